import NIOCore

/// The data path: the application's messages out as DATA, SACKs in (RFC 9260 §6, §7), DATA in and SACKs out.
extension Association {
    // MARK: - Application commands

    /// Queues a message; `transmitting` false leaves it queued until the next `transmit` (the caller's batch).
    /// `reliability` other than `.reliable` makes it partially reliable (RFC 7496), the lifetime counting from `now`.
    func sendMessage(
        _ payload: ByteBuffer, stream: StreamID, ppid: PPID, unordered: Bool, reliability: SCTPReliability = .reliable,
        transmitting: Bool = true, now: SCTPTime
    ) throws(SCTPError) {
        guard state.acceptsNewData else { throw .shuttingDown }
        guard stream.rawValue < outboundStreams || !state.isEstablishedOrLater else {
            throw .invalidStream(stream, available: outboundStreams)
        }
        guard payload.readableBytes > 0 else { throw .messageTooLarge(0) }
        let abandonment = AbandonmentRule(reliability, now: now)
        if abandonment != .never { usesPartialReliability = true }
        var lifetime: SCTPDuration?
        if case .timed(let given) = reliability { lifetime = given }
        sendQueue.enqueue(
            streamID: stream, ppid: ppid, payload: payload, isUnordered: unordered, abandonment: abandonment,
            lifetime: lifetime)
        if transmitting, state.isEstablishedOrLater { transmit(now: now) }
    }

    var isWritable: Bool { sendQueue.isWritable }

    /// Whether the application may queue more on `stream`: whenever the association is writable, and past the high
    /// watermark for a light stream (`SendQueue.isLight`) while less than `sendBufferSize` is queued. Back-pressure
    /// then falls on the bulk streams that filled the queue: a light stream's reply or keystroke, which the
    /// scheduler sends before their data, is not held in its socket until they drain to the low watermark.
    func isWritable(stream: StreamID) -> Bool {
        sendQueue.isWritable
            || (sendQueue.bufferedBytes < configuration.sendBufferSize && sendQueue.isLight(stream))
    }

    /// Whether a datagram (an unordered message with a lifetime, which its sender drops rather than holds) may be
    /// queued on `stream`: whenever the association is writable, and past the high watermark while the stream holds
    /// less than `SendQueue.datagramStreamLimit` and less than `sendBufferSize` is queued. The scheduler's lists say
    /// nothing here: a flow of datagrams beside a download is on the bulk list whenever it has used a quantum, and
    /// was then dropped with the download's queue over its watermark (a 1,000/s echo lost 0.28 % of its datagrams).
    /// The stream's own bound holds a flood to a few milliseconds of queue; beyond it its datagrams are dropped.
    func takesDatagram(on stream: StreamID) -> Bool {
        sendQueue.isWritable
            || (sendQueue.bufferedBytes < configuration.sendBufferSize
                && sendQueue.queuedBytes(on: stream) < SendQueue.datagramStreamLimit)
    }

    var bufferedAmount: Int { sendQueue.bufferedBytes + outstanding.unackedBytes }

    /// How long data queued now waits before it is first sent: the unsent bytes over the rate the paths that carry
    /// data take it at (bbr's pacing rate, else a window per smoothed round trip). Zero with nothing queued; nil
    /// while no such path has a rate.
    var sendQueueDelay: SCTPDuration? {
        let queued = sendQueue.bufferedBytes
        guard queued > 0 else { return .zero }
        var rate = 0.0
        for i in paths.indices where paths[i].state == .active && !paths[i].isStandby {
            if let pacing = paths[i].pacingRate {
                rate += pacing
            } else if let srtt = paths[i].rto.srtt, srtt > .zero {
                rate += Double(paths[i].cwnd) / srtt.seconds
            }
        }
        guard rate > 0 else { return nil }
        return .nanoseconds(Int64(Double(queued) / rate * 1e9))
    }

    /// The unsent bytes queued before back-pressure: twice the paths' congestion windows together, within
    /// `minimumSendBufferSize` and `sendBufferSize` (see `SCTPConfiguration.sendBufferSize`). A server with
    /// hundreds of associations on loopback queued 4 MiB for each, a gigabyte in all, and paid for it in page faults
    /// and cache misses on every byte.
    static func sendBufferLimit(congestionWindows: Int, configuration: SCTPConfiguration) -> Int {
        min(configuration.sendBufferSize, max(configuration.minimumSendBufferSize, 2 * congestionWindows))
    }

    /// Sizes the send queue's watermarks to the congestion windows as they are now.
    func sizeSendBuffer() {
        var windows = 0
        for i in paths.indices { windows += paths[i].cwnd }  // by index: no copy of each path
        sendQueue.setWatermarks(
            high: Association.sendBufferLimit(congestionWindows: windows, configuration: configuration))
    }

    // MARK: - Receiving DATA

    /// What a packet crossed: the local address it arrived at and the remote address it came from. Receiver-side
    /// buffer splitting shares the buffer among these, since a peer may reach several of our addresses from one.
    struct ArrivalRoute: Hashable, Sendable {
        var local: SCTPSocketAddress
        var remote: SCTPSocketAddress
    }

    /// One DATA chunk (RFC 9260 §6.2): track its TSN, hand new ones to reassembly, deliver completed messages.
    /// `route` is what the packet carrying it crossed.
    func handleData(_ chunk: DataChunk, path: PathID, route: ArrivalRoute, now: SCTPTime) -> Bool {
        // RFC 9260 §6.2: "If an endpoint receives a DATA chunk with no user data ... it MUST send an ABORT with
        // error cause set to 'No User Data'".
        guard chunk.userData.readableBytes > 0 else {
            abort(causes: [.noUserData(chunk.tsn)], reason: .protocolViolation("DATA without user data"), now: now)
            return false
        }
        // RFC 9260 §6.5: an invalid stream is reported with an ERROR, and the TSN still acknowledged.
        guard chunk.streamID.rawValue < inboundStreams else {
            if dataTracker.handleData(
                tsn: chunk.tsn, isImmediate: chunk.isImmediate, bytes: chunk.userData.readableBytes) == .new
            {
                send(
                    [.error(ErrorChunk(causes: [.invalidStreamIdentifier(chunk.streamID)]))],
                    path: path, now: now)
            }
            return true
        }
        // Beyond our buffer: drop without acknowledging (RFC 9260 §6.2 "the receiver MAY drop"). Never the chunk
        // right after the cumulative TSN: it is what lets the buffer drain, and refusing it while the buffer is full
        // of data waiting for it would deadlock the association.
        if reassembly.bufferedBytes + chunk.userData.readableBytes > configuration.receiveBufferSize
            && !dataTracker.hasReceived(chunk.tsn) && chunk.tsn != dataTracker.cumulativeTSN.next
        {
            output.drop(.receiveBufferFull)
            return true
        }
        let splitting = configuration.multipath.receiverBufferSplitting
        let size = chunk.userData.readableBytes
        if splitting { receiveSplitter.forgetRoutes(quietSince: now - configuration.rtoMin) }
        if splitting, chunk.tsn.isAfter(dataTracker.cumulativeTSN.next), !dataTracker.hasReceived(chunk.tsn),
            !receiveSplitter.admits(size: size, on: route, pathCount: receiveSplitter.routeCount(including: route))
        {
            // Receiver-side buffer splitting: this path already holds its share of the buffer out of order.
            output.drop(.pathReceiveShareFull)
            return true
        }
        lastDataPathID = path
        switch dataTracker.handleData(
            tsn: chunk.tsn, isImmediate: chunk.isImmediate, bytes: chunk.userData.readableBytes)
        {
        case .new:
            if splitting {
                receiveSplitter.recordArrival(size: size, on: route, at: now)
                if chunk.tsn.isAfter(dataTracker.cumulativeTSN) {
                    receiveSplitter.hold(tsn: chunk.tsn, size: size, on: route)
                }
                receiveSplitter.release(through: dataTracker.cumulativeTSN)
            }
            reassembly.add(chunk, buffers: &output.messageBuffers)
            deliverReassembledMessages()
        case .duplicate, .outOfWindow:
            break
        case .tooManyGaps:
            output.drop(.tooManyGaps)
            output.refusals.tsnGaps += 1
        }
        return true
    }

    /// Hands every message reassembly completed to the application.
    func deliverReassembledMessages() {
        while let message = reassembly.pollMessage() {
            // NR-SACK: a message handed to the application out of TSN order can never be reneged.
            if features.contains(.nrSack), message.lastTSN.isAfter(dataTracker.cumulativeTSN) {
                dataTracker.markDelivered(from: message.firstTSN, through: message.lastTSN)
            }
            output.events.append(
                .message(
                    id,
                    SCTPMessage(
                        stream: message.streamID, ppid: message.ppid, isUnordered: message.isUnordered,
                        payload: message.payload)))
        }
    }

    /// a_rwnd: what is left of our receive buffer (RFC 9260 §6.2).
    var advertisedReceiverWindow: UInt32 {
        UInt32(max(0, configuration.receiveBufferSize - reassembly.bufferedBytes))
    }

    func makeSackChunk() -> Chunk {
        let nrSack = features.contains(.nrSack)
        let sack = dataTracker.makeSack(
            advertisedReceiverWindowCredit: advertisedReceiverWindow, maxGapBlocks: 64,
            newestGapBlocks: configuration.multipath.concurrentMultipathTransfer ? 32 : 0, includeNonRenegable: nrSack)
        timers.disarm(.delayedSack)
        let dacCount = configuration.multipath.delayedAckForCMT ? UInt8(min(sack.packetsSinceLastSack, 3)) : 0
        if nrSack {
            return .nrSack(
                NRSackChunk(
                    cumulativeTSNAck: sack.cumulativeTSNAck,
                    advertisedReceiverWindowCredit: sack.advertisedReceiverWindowCredit,
                    gapAckBlocks: sack.gapAckBlocks.map { GapAckBlock(start: $0.start, end: $0.end) },
                    nrGapAckBlocks: sack.nrGapAckBlocks.map { GapAckBlock(start: $0.start, end: $0.end) },
                    duplicateTSNs: sack.duplicateTSNs, delayedAckPacketCount: dacCount))
        }
        return .sack(
            SackChunk(
                cumulativeTSNAck: sack.cumulativeTSNAck,
                advertisedReceiverWindowCredit: sack.advertisedReceiverWindowCredit,
                gapAckBlocks: sack.gapAckBlocks.map { GapAckBlock(start: $0.start, end: $0.end) },
                duplicateTSNs: sack.duplicateTSNs, delayedAckPacketCount: dacCount))
    }

    func sendSackNow(now: SCTPTime) {
        guard state.isEstablishedOrLater, dataTracker.hasPendingSack else { return }
        send(CollectionOfOne(makeSackChunk()), path: sackPathID, now: now)
    }

    /// How long a thinned SACK (`SCTPConfiguration.packetsPerSack` above 2) may be held from the second packet on:
    /// an eighth of the shortest smoothed round trip among the paths, so the sender's RTT samples and window growth
    /// barely notice and a slow path's packets, too far apart to make up the count, are acknowledged about as the
    /// RFC would; within 1 and 10 ms (1 ms until a path has a measurement).
    var thinnedSackDelay: SCTPDuration {
        var shortest: SCTPDuration?
        for i in paths.indices {  // by index: no copy of each path
            if let srtt = paths[i].rto.srtt, shortest.map({ srtt < $0 }) ?? true { shortest = srtt }
        }
        guard let shortest else { return Self.thinnedSackDelayBounds.lowerBound }
        let eighth = SCTPDuration.nanoseconds(shortest.nanoseconds / 8)
        return min(max(eighth, Self.thinnedSackDelayBounds.lowerBound), Self.thinnedSackDelayBounds.upperBound)
    }

    static let thinnedSackDelayBounds = SCTPDuration.milliseconds(1)...SCTPDuration.milliseconds(10)

    /// After a packet's DATA chunks: acknowledge now, or arm the delayed-SACK timer.
    func scheduleSack(now: SCTPTime) {
        if thinsSacks {  // the bound is worked out only when it applies
            dataTracker.handlePacketEnd(now: now, thinnedDelay: thinnedSackDelay)
        } else {
            dataTracker.handlePacketEnd(now: now)
        }
        if dataTracker.isSackDue(now: now) {
            // Sent by `transmit`, bundled with DATA going back if any.
            return
        }
        if let deadline = dataTracker.sackDeadline { timers.arm(.delayedSack, at: deadline) }
    }

    // MARK: - Receiving SACK

    func handleSack(_ chunk: SackChunk, now: SCTPTime) {
        let info = SackInfo(
            cumulativeTSNAck: chunk.cumulativeTSNAck,
            advertisedReceiverWindowCredit: chunk.advertisedReceiverWindowCredit,
            gapAckBlocks: chunk.gapAckBlocks.map { ($0.start, $0.end) },
            duplicateTSNs: chunk.duplicateTSNs,
            packetsSinceLastSack: max(1, Int(chunk.delayedAckPacketCount)))
        processSack(info, now: now)
    }

    /// NR-SACK (draft-natarajan-tsvwg-sctp-nrsack): like SACK, and the NR gap blocks free their chunks at once.
    func handleNRSack(_ chunk: NRSackChunk, now: SCTPTime) {
        let info = SackInfo(
            cumulativeTSNAck: chunk.cumulativeTSNAck,
            advertisedReceiverWindowCredit: chunk.advertisedReceiverWindowCredit,
            gapAckBlocks: chunk.gapAckBlocks.map { ($0.start, $0.end) },
            nrGapAckBlocks: chunk.nrGapAckBlocks.map { ($0.start, $0.end) },
            duplicateTSNs: chunk.duplicateTSNs,
            packetsSinceLastSack: max(1, Int(chunk.delayedAckPacketCount)))
        processSack(info, now: now)
    }

    /// SHUTDOWN's cumulative TSN ack acknowledges like a SACK without gap blocks (RFC 9260 §9.2).
    func processCumulativeAck(_ tsn: TSN, now: SCTPTime) {
        guard tsn.isAfter(outstanding.cumulativeTSNAck) else { return }
        processSack(SackInfo(cumulativeTSNAck: tsn, advertisedReceiverWindowCredit: peerReceiverWindow), now: now)
    }

    func processSack(_ sack: SackInfo, now: SCTPTime) {
        let outcome = outstanding.handleSack(sack, now: now, hasNewData: !sendQueue.isEmpty) { [paths] pathID in
            paths.position(of: pathID).map { paths[$0].isInFastRecovery } ?? false
        }
        switch outcome.disposition {
        case .stale:
            return
        case .acknowledgesUnsentTSN:
            // RFC 9260 §6.2.1 D: a SACK acknowledging a TSN not yet sent is a protocol violation.
            abort(
                causes: [.protocolViolation(ByteBuffer(string: "SACK acknowledges unsent TSN"))],
                reason: .protocolViolation("SACK acknowledges unsent TSN"), now: now)
            return
        case .accepted:
            break
        }
        peerReceiverWindow = UInt32(outcome.peerReceiverWindow)
        peerAdvertisedWindow = sack.advertisedReceiverWindowCredit
        peerLargestAdvertisedWindow = max(peerLargestAdvertisedWindow, peerAdvertisedWindow)
        if outcome.cumulativeTSNAckAdvanced { errorCount = 0 }
        // CUC: with CMT each destination's window follows its own pseudo-cumulative ack.
        let cuc = configuration.multipath.concurrentMultipathTransfer && configuration.multipath.cwndUpdateForCMT
        let coupling = configuration.multipath.coupledCongestionControl ? lia() : nil
        for ack in outcome.paths {
            guard let i = paths.position(of: ack.path) else { continue }
            if let rtt = ack.rttSample { paths[i].measureRoundTrip(rtt, now: now) }
            if ack.bytesAcked > 0 { reportStateChange(paths[i].recordReachable(), path: ack.path) }
            if let sentAt = ack.latestNewlyAckedSendTime { paths[i].noteDataAcknowledged(sentAt: sentAt) }
            switch ack.timeoutVerdict {
            case .undecided: break
            case .spurious: undoSpuriousTimeout(path: i, now: now)
            case .genuine: paths[i].forgetRetransmissionTimeout()
            }
            var congestionAck = CongestionAck(
                bytesAcked: ack.bytesAcked,
                ackPointAdvanced: cuc ? ack.pseudoCumulativeAckAdvanced : outcome.cumulativeTSNAckAdvanced,
                flightSizeBeforeAck: ack.flightSizeBeforeSack,
                ackPoint: cuc ? ack.ackPoint : outstanding.cumulativeTSNAck,
                allDataAcked: ack.allDataAcked, coupling: coupling)
            congestionAck.now = now
            congestionAck.rateSample = ack.rateSample
            congestionAck.delivered = ack.delivered
            congestionAck.flightSize = ack.flightSize
            congestionAck.rttSample = ack.rttSample
            paths[i].congestion.handleAck(congestionAck)
            if paths[i].congestion.isModelBased { paths[i].updatePacingRate(now: now) }
            if configuration.multipath.recoveryPacketConservation, paths[i].isInFastRecovery,
                ack.bytesAcked > 0
            {
                paths[i].recoveryAllowance += ack.bytesAcked
                hasRecoveryAllowance = true
            }
            if ack.hasNewFastRetransmits {
                // RFC 9260 §7.2.4: enter fast recovery once per window; the marked chunks go out next.
                // RFC 9260 §7.2.4: enter fast recovery once per window and then send one packet of the marked
                // chunks at once on the path that lost them, whatever its cwnd. Later losses in the same window
                // wait for room in cwnd like any retransmission.
                if paths[i].congestion.handleFastRetransmit(
                    highestOutstandingTSN: outstanding.highestOutstandingTSN, flightSize: ack.flightSize)
                {
                    fastRetransmitPaths.insert(ack.path)
                }
                paths[i].counters.fastRetransmissions += 1
            }
            // RFC 9260 §6.3.2 R2/R3: stop T3 when nothing is outstanding there, restart it when the earliest
            // outstanding TSN sent there was acknowledged.
            if ack.allDataAcked {
                timers.disarm(.t3rtx(ack.path))
            } else if ack.pseudoCumulativeAckAdvanced {
                timers.arm(.t3rtx(ack.path), at: now + paths[i].rto.rto)
            }
        }
        if usesPartialReliability { handleSackForPartialReliability(now: now) }
        sizeSendBuffer()
        if sendQueue.pollWritable() { output.events.append(.writable(id)) }
        continueShutdown(now: now)
    }

    /// RFC 6356 §3: alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i(cwnd_i / rtt_i))^2, over the paths
    /// that carry data.
    func lia() -> Coupling {
        var total = 0.0
        var best = 0.0
        var sum = 0.0
        for i in paths.indices where paths[i].isActive {
            let cwnd = Double(paths[i].cwnd)
            let rtt = max((paths[i].rto.srtt ?? paths[i].rto.rto).seconds, 0.001)
            total += cwnd
            best = max(best, cwnd / (rtt * rtt))
            sum += cwnd / rtt
        }
        let alpha = sum > 0 ? total * best / (sum * sum) : 1
        return Coupling(totalCwnd: Int(total), alpha: alpha)
    }

    // MARK: - Retransmission timer

    /// The T3-rtx expiries of `paths[i]` were spurious: this SACK acknowledged a chunk they marked and that was
    /// never retransmitted since (`OutstandingData.TimeoutVerdict`), so the data was not lost, its SACKs were late
    /// (a busy host's event loop, say). `OutstandingData` has put the chunks still marked back in flight; here the
    /// window and RTO come back (`Path.undoRetransmissionTimeout`). The error counts need nothing: this SACK's
    /// acknowledgement cleared the path's (RFC 9260 §8.2) and the association's as any does. What the expiries
    /// retransmitted stays sent; the timer restarts for what is in flight again (RFC 9260 §6.3.2 R3).
    func undoSpuriousTimeout(path i: Int, now: SCTPTime) {
        paths[i].undoRetransmissionTimeout()
        timers.arm(.t3rtx(paths[i].id), at: now + paths[i].rto.rto)
    }

    /// RFC 9260 §6.3.3: T3-rtx expiry: back off, collapse cwnd, mark the path's data for retransmission.
    func handleT3Expiry(pathID: PathID, now: SCTPTime) {
        guard let i = paths.position(of: pathID) else { return }
        let (returned, startsEpisode) = outstanding.markAllForRetransmission(on: pathID)
        let forwardTSNPending = usesPartialReliability && handleT3ExpiryForPartialReliability()
        guard returned > 0 || outstanding.hasChunksToRetransmit || forwardTSNPending else {
            if startsEpisode { outstanding.forgetTimeout(on: pathID) }
            return
        }
        paths[i].counters.retransmissions += 1
        reportStateChange(paths[i].handleRetransmissionTimeout(), path: pathID)
        // One packet's worth goes; the rest waits for the SACK that shows the expiry spurious or not
        // (`OutstandingData.suspendTimeoutRetransmissions`).
        outstanding.suspendTimeoutRetransmissions(on: pathID, keeping: paths[i].mtu - CommonHeader.size)
        if countAssociationError(now: now) { return }
    }
}
