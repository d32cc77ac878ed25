import NIOCore

/// Packet assembly: bundles a pending SACK, retransmissions and new DATA into MTU-sized packets on every path
/// that congestion control allows (RFC 9260 §6.1, §6.10), and keeps each path's T3-rtx running.
extension Association {
    /// Whether SACKs are thinned both ways (`SCTPConfiguration.packetsPerSack` above 2, which agg's daemons both set):
    /// then the peer, like this end, acknowledges fewer than every second packet, and the sender marks with the I bit
    /// every chunk it needs a SACK for at once.
    var thinsSacks: Bool { configuration.packetsPerSack > DataTracker.rfcPacketsPerSack }

    /// A path window under this many bytes gets the I bit on the packet that fills it when SACKs are thinned: twice
    /// the packets per SACK, so a larger window always holds enough packets in flight for the peer's count to bring
    /// the next SACK.
    func smallWindow(mtu: Int) -> Int { 2 * configuration.packetsPerSack * mtu }

    /// Bytes of chunk header in front of DATA's user data.
    static let dataChunkOverhead = 16

    var mayCarryData: Bool {
        switch state {
        case .established, .shutdownPending, .shutdownReceived: return true
        case .cookieWait, .cookieEchoed, .shutdownSent, .shutdownAckSent, .closed: return false
        }
    }

    /// The paths that get new data, in the order they are served. Without CMT: the one send path. With CMT:
    /// every active path (RFC 7829: not the potentially failed ones), round robin or lowest RTT first.
    func dataPathIDs() -> [PathID] {
        // Filled into the kept array: the caller's loop has let go of the last call's copy, so no array is
        // allocated per transmit.
        var order: [PathID] = []
        swap(&order, &dataPathOrder)
        order.removeAll(keepingCapacity: true)
        defer { dataPathOrder = order }
        let multipath = configuration.multipath
        if multipath.concurrentMultipathTransfer {
            let policies = hasPathPolicies
            for i in paths.indices where takesNewData(paths[i], policies: policies) { order.append(paths[i].id) }
        }
        guard !order.isEmpty else {
            order.append(sendPathID)
            return order
        }
        switch multipath.scheduler {
        case .roundRobin:
            // The cursor moves on every CMT transmit, one path active or more.
            roundRobinCursor &+= 1
            for _ in 0..<(roundRobinCursor % order.count) { order.append(order.removeFirst()) }
        case .lowestRTTFirst:
            // Insertion sort, stable like the sort it replaces: a handful of paths.
            func srtt(_ id: PathID) -> SCTPDuration { paths[id].rto.srtt ?? .seconds(3600) }
            for j in order.indices.dropFirst() {
                let id = order[j]
                var k = j
                while k > 0, srtt(id) < srtt(order[k - 1]) {
                    order[k] = order[k - 1]
                    k -= 1
                }
                order[k] = id
            }
        }
        return order
    }

    /// Whether CMT gives `path` new data: it is active (RFC 7829: not potentially failed), or under path policies
    /// it carries data and its bucket has room.
    func takesNewData(_ path: Path, policies: Bool) -> Bool {
        policies ? path.carriesData && path.hasSendAllowance : path.isActive
    }

    /// Where a sparse stream's data goes (a reply, a keystroke, a page's first request: `SendQueue`'s sparse list):
    /// the data path with the lowest RTT (`Path.recentRoundTrip`), where it is expected to arrive first, so it
    /// neither waits behind a slower path's delay nor behind a queue that path's rate drop left; the others leave
    /// its turn to that path. Paths whose RTTs are alike share it: a light flow alone (nothing but sparse data
    /// queued) goes to the one that sent data least recently, so its messages alternate; beside bulk data, nil
    /// (each takes it in the scheduler's turn). Nil with one data path, or when no path has an RTT yet.
    func sparseDataPathID(among dataPaths: [PathID]) -> PathID? {
        guard dataPaths.count > 1 else { return nil }
        let timed = dataPaths.filter { paths[$0].rto.srtt != nil && fitsPeerBuffer(path: $0) }
        guard let best = timed.min(by: { paths[$0].recentRoundTrip! < paths[$1].recentRoundTrip! }) else {
            return nil
        }
        // Paths whose round trips are within noise of each other are alike: sparse data then takes turns, so a
        // light flow keeps every path in use (and every path's RTT measured) instead of the one that measured a
        // hair faster taking it all.
        let fastest = paths[best].recentRoundTrip!
        let margin = max(SCTPDuration.milliseconds(2), fastest / 8)
        guard timed.contains(where: { $0 != best && paths[$0].recentRoundTrip! - fastest >= margin }) else {
            // Turns by the round-robin cursor would not alternate a light flow (it moves per transmit, and a message
            // and its SACK make two): the path that sent least recently, among those with room in their window.
            guard sendQueue.holdsOnlySparseStreams else { return nil }
            return timed.lazy.filter { self.outstanding.flightSize(on: $0) < self.paths[$0].cwnd }
                .min { (self.paths[$0].lastDataSent ?? .zero) < (self.paths[$1].lastDataSent ?? .zero) }
        }
        return best
    }

    /// Keeps current the RTTs that sparse data is placed by (`sparseDataPathID`, and a timed message's lifetime
    /// against each path's delay). A path that carries none of it is measured only by what else it carries, often
    /// nothing but a heartbeat every 15 s: one slow sample (a heartbeat that met a queue) would keep it out for
    /// good, and a path never measured (the primary, confirmed by the handshake) would never qualify for a timed
    /// message; a light flow then stays on one of two equal paths. While sparse data is sent, a data path with
    /// nothing in flight (one with data in flight is measured by its SACKs) whose last sample is older than
    /// `max(1 s, 8 × the lowest SRTT)`, or that has none, gets a heartbeat: one small packet and its answer a second
    /// at most, none of the flow's data on a path not known to be fit for it. One sample suffices
    /// (`Path.recentRoundTrip` counts the last one). An unanswered one counts against the path one RTO after it
    /// went, as any heartbeat does (RFC 9260 §8.3): a data path that died while the flow kept off it is potentially
    /// failed before the flow would return to it. Meanwhile no other goes to that path.
    func refreshRoundTrips(among dataPaths: [PathID], now: SCTPTime) {
        let fastest = dataPaths.lazy.compactMap { self.paths[$0].rto.srtt }.min() ?? .zero
        let interval = max(SCTPDuration.seconds(1), fastest * 8)
        for id in dataPaths where !paths[id].heartbeat.isOutstanding && outstanding.flightSize(on: id) == 0 {
            if let last = paths[id].lastRoundTrip, now - last.at < interval { continue }
            sendHeartbeat(path: id, now: now)
        }
    }

    /// The path for retransmissions. RFC 9260 §6.4.1 sends them to an active alternate when there is one; CMT's
    /// RTX-SSTHRESH takes the active path with the largest ssthresh, RTX-CWND the largest cwnd; a path whose peer
    /// buffer share the chunk fits is preferred. Under path policies the candidates are the paths carrying data,
    /// those with room in their bucket when any has.
    /// A path that sender-side buffer splitting keeps new data off is no place for a retransmission either: the
    /// hole it fills holds up everything above it for that path's delay.
    func retransmissionPathID() -> PathID {
        let policy = configuration.multipath.retransmissionPolicy
        if policy == .samePath { return sendPathID }
        let policies = hasPathPolicies
        let anyAllowed = policies && paths.contains { $0.carriesData && $0.hasSendAllowance }
        var best: Int?
        var bestFits = false
        for i in paths.indices {
            let isCandidate =
                policies ? paths[i].carriesData && (!anyAllowed || paths[i].hasSendAllowance) : paths[i].isActive
            guard isCandidate else { continue }
            let fits = fitsPeerBuffer(path: paths[i].id)
            guard let b = best, fits == bestFits else {
                if best == nil || fits {
                    best = i
                    bestFits = fits
                }
                continue
            }
            let larger =
                policy == .cwnd
                ? paths[i].cwnd > paths[b].cwnd
                : paths[i].ssthresh > paths[b].ssthresh
            if larger { best = i }
        }
        return best.map { paths[$0].id } ?? sendPathID
    }

    /// Sends everything that may go now.
    func transmit(now: SCTPTime) {
        guard !isClosed else { return }
        // Read once: without policies or pacing no path's bucket is looked at per packet.
        let policies = hasPathPolicies
        let paced = isPaced
        let gated = policies || paced
        if policies { refreshPathRoles(now: now) }
        if paced { for i in paths.indices { paths[i].refillPacer(now: now) } }
        var sack: Chunk? = (state.isEstablishedOrLater && dataTracker.isSackDue(now: now)) ? makeSackChunk() : nil
        if mayCarryData {
            if usesPartialReliability { abandonAndForward(now: now, sack: &sack) }
            // Most calls on a receiving side find nothing to send but a SACK: no path is looked at for data then.
            if outstanding.hasChunksToRetransmit || !sendQueue.isEmpty {
                sendData(now: now, sack: &sack, gated: gated)
            } else {
                fastRetransmitPaths.removeAll(keepingCapacity: true)
                // The round-robin cursor moves as `dataPathIDs` would have moved it.
                if configuration.multipath.concurrentMultipathTransfer,
                    configuration.multipath.scheduler == .roundRobin,
                    paths.contains(where: { takesNewData($0, policies: policies) })
                {
                    roundRobinCursor &+= 1
                }
            }
            if paced && sendQueue.isEmpty && !outstanding.hasChunksToRetransmit { markAppLimitedPaths() }
        }
        if let sack { send(CollectionOfOne(sack), path: sackPathID, now: now) }
        if hasRecoveryAllowance {
            for i in paths.indices { paths[i].recoveryAllowance = 0 }
            hasRecoveryAllowance = false
        }
        if gated { armSendRateTimer(now: now) }
    }

    /// Retransmissions (fast ones first, whatever cwnd says; then those T3 marked, on the retransmission path),
    /// then new data on every data path, each within what its window and pacer allow.
    private func sendData(now: SCTPTime, sack: inout Chunk?, gated: Bool) {
        let rtx = retransmissionPathID()
        if !fastRetransmitPaths.isEmpty {
            // In the paths' order; a path removed since it was marked is skipped.
            for i in paths.indices where fastRetransmitPaths.contains(paths[i].id) && outstanding.hasChunksToRetransmit
            {
                // RFC 9260 §7.2.4 3: one packet of the marked chunks goes at once, whatever cwnd says.
                sendDataPacket(
                    path: paths[i].isActive ? paths[i].id : rtx, now: now, sack: &sack, mode: .fastRetransmit)
            }
            fastRetransmitPaths.removeAll(keepingCapacity: true)
        }
        // Chunks marked by T3 expiry go to the retransmission path within its cwnd, before new data there.
        while outstanding.hasChunksToRetransmit, !gated || paths[rtx].hasSendAllowance,
            sendDataPacket(path: rtx, now: now, sack: &sack, mode: .retransmissionsOnly)
        {}
        let dataPaths = dataPathIDs()
        let sparsePath = sendQueue.hasSparseStreams ? sparseDataPathID(among: dataPaths) : nil
        if sendQueue.hasSparseStreams, dataPaths.count > 1 { refreshRoundTrips(among: dataPaths, now: now) }
        for id in dataPaths {
            while !gated || paths[id].hasSendAllowance,
                sendDataPacket(
                    path: id, now: now, sack: &sack, mode: .newData,
                    leavesSparseStreams: sparsePath.map { $0 != id } ?? false)
            {}
        }
    }

    /// Paths are paced by their congestion controller (BBR): `transmit` checks their pacers.
    var isPaced: Bool { configuration.congestionControl == .bbr }

    /// The send queue ran dry with room left in a path's window: rate samples from what goes there next may
    /// understate the path, and the controller must know (draft-cheng-iccrg-delivery-rate-estimation §3.4).
    func markAppLimitedPaths() {
        // By index: a `for path in paths` loop copies each path (a large struct) per call, and this runs per packet.
        for i in paths.indices where paths[i].carriesData {
            let id = paths[i].id
            if outstanding.flightSize(on: id) < paths[i].cwnd { outstanding.markAppLimited(on: id) }
        }
    }

    enum PacketMode {
        /// Marked chunks only, ignoring cwnd (one packet).
        case fastRetransmit
        /// Marked chunks only, within cwnd.
        case retransmissionsOnly
        /// Marked chunks first, then new data, within cwnd and the peer's window.
        case newData
    }

    /// Builds and sends one packet for a path. Returns false when there was nothing to send.
    @discardableResult
    func sendDataPacket(
        path pathID: PathID, now: SCTPTime, sack: inout Chunk?, mode: PacketMode, leavesSparseStreams: Bool = false
    ) -> Bool {
        let ignoreCwnd = mode == .fastRetransmit
        // The path's position, for this packet only (nothing below adds or removes a path).
        let i = paths.position(of: pathID)!
        // Every chunk is padded to 4 bytes (RFC 9260 §3.2), so a packet's length is always a multiple of 4: the
        // largest one that fits is the path MTU rounded down, or a 1439-byte MTU would produce 1440-byte packets.
        // Unless the layer below leaves the last chunk's padding out: then the unpadded length is what must fit
        // (every chunk before the last is padded, so the builder's size stays a multiple of 4).
        let mtu = lastChunkUnpadded ? paths[i].mtu : paths[i].mtu & ~3
        var builder = PacketBuilder(
            header: CommonHeader(
                sourcePort: localPort, destinationPort: peerPort, verificationTag: peerTag, checksum: 0),
            buffer: output.packetBuffer(capacity: paddedLength(mtu)))
        if let s = sack, pathID == sackPathID {
            builder.add(s)
            sack = nil
        }
        var dataBytes = 0
        var flight = outstanding.flightSize(on: pathID)
        let cwnd = paths[i].cwnd
        let initialAllowance = paths[i].recoveryAllowance
        var allowance = initialAllowance
        defer { if allowance != initialAllowance { paths[i].recoveryAllowance = allowance } }

        // Retransmissions first (RFC 9260 §6.1 C: "retransmit ... before sending new DATA").
        while let size = outstanding.peekRetransmissionSize(), builder.size + Self.dataChunkOverhead + size <= mtu {
            if ignoreCwnd || flight < cwnd {
                // within cwnd
            } else if allowance >= size {
                allowance -= size
            } else {
                break
            }
            guard var chunk = outstanding.pollRetransmission(to: pathID, now: now) else { break }
            // The sender waits for this chunk's SACK (fast recovery, or a path back from a timeout): a peer that
            // acknowledges fewer than every second packet sends it at once (RFC 7053).
            if thinsSacks { chunk.isImmediate = true }
            builder.add(data: chunk)
            dataBytes += size
            flight += size
            paths[i].counters.retransmissions += 1
        }
        // New data, within cwnd and the peer's window (RFC 9260 §6.1 A, B). With nothing in flight one chunk may
        // probe a zero window. With sender-side buffer splitting a path may hold at most its cwnd's share of the
        // peer's window, so a slow path cannot fill the receiver's buffer and stall the fast one.
        if mode == .newData, fitsPeerBuffer(path: pathID) {
            let share = bufferShare(path: pathID)
            while !sendQueue.isEmpty, flight < cwnd, flight < share {
                let room = mtu - builder.size - Self.dataChunkOverhead
                guard room >= 64 || (room > 0 && dataBytes == 0) else { break }
                let window = Int(peerReceiverWindow)
                let allowed: Int
                if window >= room {
                    allowed = room
                } else if window > 0 {
                    allowed = window
                } else if outstanding.totalFlightSize == 0 && dataBytes == 0 {
                    allowed = min(room, 1024)  // zero-window probe (RFC 9260 §6.1 A)
                } else {
                    break
                }
                let arrivals = usesPartialReliability ? timedArrivals(path: pathID, now: now) : nil
                guard
                    var fragment = sendQueue.produce(
                        maxPayload: allowed, arrivals: arrivals, keepsTimedMessagesWhole: dataBytes > 0,
                        leavesSparseStreams: leavesSparseStreams)
                else { break }
                // RFC 7053: the last chunk before the queue runs dry asks for an immediate SACK. Otherwise the
                // peer's delayed ack (200 ms) plus the RTT outlasts RTO.Min and a lone trailing packet is
                // retransmitted spuriously, collapsing that path's cwnd. To a peer that acknowledges fewer than every
                // second packet, so does the last one that the peer's window, or a window of the path too small for
                // the peer's count to bring SACKs on its own (`smallWindow`), lets go: nothing follows it until a
                // SACK comes.
                let size = fragment.payload.readableBytes
                let pathWindow = min(cwnd, share)
                let fillsSmallWindow = flight + size >= pathWindow && pathWindow < smallWindow(mtu: mtu)
                if sendQueue.isEmpty || (thinsSacks && (size >= window || fillsSmallWindow)) {
                    fragment.isImmediate = true
                }
                builder.add(data: outstanding.insert(consume fragment, path: pathID, now: now))
                dataBytes += size
                flight += size
                peerReceiverWindow = UInt32(max(0, Int(peerReceiverWindow) - size))
            }
        }
        guard !builder.isEmpty else {
            // Nothing went (every transmit's last try): the buffer goes back rather than to waste.
            output.recycle(builder.buffer)
            return false
        }
        // RFC 9653: the peer accepts a zero checksum under the method protecting every packet (AEAD, below us).
        emit(builder.finish(checksum: !features.contains(.zeroChecksum)), path: pathID, dataBytes: dataBytes, now: now)
        if dataBytes > 0, !timers.isArmed(.t3rtx(pathID)) {
            timers.arm(.t3rtx(pathID), at: now + paths[i].rto.rto)
        }
        if sendQueue.pollWritable() { output.events.append(.writable(id)) }
        return dataBytes > 0
    }

    /// The bytes `path` may have outstanding under sender-side buffer splitting: the peer's a_rwnd split in
    /// proportion to the active paths' cwnds. Unlimited when splitting is off or only one path carries data.
    func bufferShare(path: PathID) -> Int {
        let multipath = configuration.multipath
        guard multipath.concurrentMultipathTransfer, multipath.senderBufferSplitting else { return .max }
        var total = 0
        var count = 0
        for j in paths.indices where paths[j].carriesData {
            total += paths[j].cwnd
            count += 1
        }
        guard count > 1, total > 0 else { return .max }
        let i = paths.position(of: path)!
        let share = Int(peerAdvertisedWindow) * paths[i].cwnd / total
        return max(share, paths[i].mtu)
    }

    /// Sender-side buffer splitting, for paths of unequal delay: while a chunk sent on `path` (i) is in flight,
    /// every faster path keeps delivering data with higher TSNs, which the peer must hold until that chunk
    /// arrives. About rate_j × (srtt_i − srtt_j) bytes for each faster path j, with rate_j = cwnd_j / srtt_j. When
    /// that exceeds half the peer's receive buffer, new data on `i` would block the faster paths (the CMT
    /// receive-buffer blocking problem) and cost more than `i` carries, so `i` gets none; it still carries
    /// retransmissions and heartbeats, and is used again when the figures change.
    func fitsPeerBuffer(path: PathID) -> Bool {
        let multipath = configuration.multipath
        guard multipath.concurrentMultipathTransfer, multipath.senderBufferSplitting else { return true }
        let i = paths.position(of: path)!
        guard let srtt = paths[i].rto.srtt else { return true }
        let buffer = Double(max(peerLargestAdvertisedWindow, peerAdvertisedWindow))
        var heldUp = 0.0
        for j in paths.indices where j != i && paths[j].carriesData {
            guard let faster = paths[j].rto.srtt, faster < srtt else { continue }
            let rate = Double(paths[j].cwnd) / max(faster.seconds, 0.001)
            heldUp += rate * (srtt - faster).seconds
        }
        return heldUp <= buffer / 2
    }
}
