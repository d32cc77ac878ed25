import NIOCore

/// Partial reliability: PR-SCTP (RFC 3758) with the policies of RFC 7496. The sender abandons messages whose policy
/// says so and moves the peer's cumulative TSN past them with FORWARD-TSN (§3.5); the receiver skips what a
/// FORWARD-TSN tells it to (§3.6). Only used when both ends announced Forward-TSN-Supported (§3.3).
extension Association {
    /// PR-SCTP negotiated: FORWARD-TSN may be sent and is processed.
    var isPartialReliabilityNegotiated: Bool { features.contains(.forwardTSN) }

    // MARK: - Negotiation (RFC 3758 §3.3)

    /// Whether the peer's INIT or INIT-ACK parameters announce FORWARD-TSN: the Forward-TSN-Supported parameter
    /// (§3.1), or FORWARD-TSN in Supported Extensions (RFC 5061 §4.2.7), which usrsctp sends as well.
    static func peerSupportsForwardTSN(_ parameters: [Parameter]) -> Bool {
        parameters.contains { parameter in
            switch parameter {
            case .forwardTSNSupported: return true
            case .supportedExtensions(let types): return types.contains(ForwardTSNChunk.type)
            default: return false
            }
        }
    }

    // MARK: - Sender (RFC 3758 §3.5)

    /// How long a packet sent on `path` now takes to arrive, for lifetimes: half the smoothed RTT, plus the RTT
    /// variation, which covers the queue a burst of our own builds in front of it. Zero before any measurement: the
    /// initial RTO (1 s) says nothing about the path, and taking half of it would drop every message of a lifetime
    /// below 500 ms unsent, so that no DATA would ever yield a measurement.
    func oneWayDelay(_ path: borrowing Path) -> SCTPDuration {
        guard let srtt = path.rto.srtt else { return .zero }
        return srtt / 2 + path.rto.rttvar
    }

    /// When a timed message handed to `path` now would arrive, for the send queue (`SendQueue.TimedArrivals`). A
    /// message goes on the first path whose turn comes, unless it would be late there while another path that carries
    /// data and may send now (room in its cwnd, and tokens in its pacer or its policy's bucket where it has one) would
    /// deliver it in time: then it is left for that path, which the same transmission serves. Without this a slow path
    /// (a bufferbloated LTE uplink, 700 ms of RTT) dropped every datagram whose turn it had while the fast path had
    /// room. When no other path has room, the message is judged on this path alone (RFC 3758 §4.1 TR3: dropped if it
    /// would arrive too late, `SendQueue.Message.arriveBy`), as before: leaving it for a full path would idle this one
    /// (measured in the lab: 60 Mbit/s offered to the 20 + 30 Mbit/s paths delivered only path 2's 28.5 Mbit/s). A
    /// paced path (BBR) has room in its cwnd nearly always: counting that as able to send left the head of an overfull
    /// queue to a path whose pacer was empty, and the other path idle (the same offer delivered 38 Mbit/s instead of 48
    /// in the simulator, 35.5 of 45 in the lab). A path without an RTT sample counts as instant here (as `oneWayDelay`
    /// says) but as half the initial RTO when it is the other path, so a measured path is preferred to it. The fastest
    /// delay is the lowest one-way delay of any data path with an RTT sample, room or not: a fast path that is full
    /// for the moment keeps the deadline strict, so a slow path does not carry a message late that it would deliver
    /// in time (`SendQueue.Message.arriveBy`).
    func timedArrivals(path: PathID, now: SCTPTime) -> SendQueue.TimedArrivals {
        func guess(_ j: Int) -> SCTPTime {
            paths[j].rto.srtt == nil ? now + configuration.rtoInitial / 2 : now + oneWayDelay(paths[j])
        }
        let i = paths.position(of: path)!
        let here = now + oneWayDelay(paths[i])
        let gated = hasPathPolicies || isPaced
        guard configuration.multipath.concurrentMultipathTransfer else {
            return SendQueue.TimedArrivals(here, fastestDelay: here - now)
        }
        var best: SCTPTime?
        var fastest = here - now
        for j in paths.indices where j != i && paths[j].carriesData {
            if paths[j].rto.srtt != nil { fastest = min(fastest, oneWayDelay(paths[j])) }
            guard outstanding.flightSize(on: paths[j].id) < paths[j].cwnd, fitsPeerBuffer(path: paths[j].id),
                !gated || paths[j].hasSendAllowance
            else { continue }
            best = min(best ?? guess(j), guess(j))
        }
        guard let best, best < guess(i) else { return SendQueue.TimedArrivals(here, fastestDelay: fastest) }
        return SendQueue.TimedArrivals(earliest: min(best, here), here: guess(i), best: best, fastestDelay: fastest)
    }

    /// Before anything is retransmitted: abandons the chunks marked for retransmission that their rule gives up on
    /// (RFC 3758 §4.1 TR4), then sends a FORWARD-TSN if one is due, bundled with the pending SACK if any. Called by
    /// `transmit` on associations that have sent partially reliable messages.
    func abandonAndForward(now: SCTPTime, sack: inout Chunk?) {
        if isPartialReliabilityNegotiated, outstanding.hasChunksToRetransmit {
            let arrival = now + oneWayDelay(paths[retransmissionPathID()])
            let abandoned = outstanding.abandonMarkedChunks(arrival: arrival)
            if abandoned.messages > 0 {
                output.partialReliability.messagesAbandonedSent += abandoned.messages
                for stream in abandoned.unfinishedStreams { sendQueue.dropStartedMessage(on: stream) }
                if outstanding.needsForwardTSN { isForwardTSNDue = true }
            }
        }
        let unsent = sendQueue.pollAbandoned()
        if unsent > 0 { output.partialReliability.messagesAbandonedUnsent += unsent }
        guard isForwardTSNDue else { return }
        isForwardTSNDue = false
        sendForwardTSN(now: now, sack: &sack)
    }

    /// RFC 3758 §3.5 C3: "the data sender MUST send the data receiver a FORWARD TSN chunk containing the latest value
    /// of the Advanced.Peer.Ack.Point", to a confirmed address, bundled with the SACK waiting to go (F2); C5: "the
    /// sender MUST assure that at least one T3-rtx timer is running".
    func sendForwardTSN(now: SCTPTime, sack: inout Chunk?) {
        // Room for the chunk in one packet beside a SACK: 1,472 bytes take about 300 stream entries.
        let path = sendPathID
        let maxStreams = max(1, (paths[path].mtu - 12 - 8 - 400) / 4)
        guard let chunk = outstanding.makeForwardTSN(maxStreams: maxStreams) else { return }
        var chunks: [Chunk] = []
        if let pending = sack {
            chunks.append(pending)
            sack = nil
        }
        chunks.append(.forwardTSN(chunk))
        send(chunks, path: path, now: now)
        lastForwardTSN = (chunk.newCumulativeTSN, now)
        output.partialReliability.forwardTSNsSent += 1
        if !timers.isArmed(.t3rtx(path)) { timers.arm(.t3rtx(path), at: now + paths[path].rto.rto) }
    }

    /// RFC 3758 §3.5 C1-C3, after a SACK was processed: when the Advanced.Peer.Ack.Point lies beyond the SACK's
    /// cumulative TSN ack, a FORWARD-TSN is due. A repeat of the last one waits a round trip (F2: "waiting a full
    /// RTT before sending a duplicate FORWARD TSN"), keeping a T3-rtx timer running meanwhile (C5).
    func handleSackForPartialReliability(now: SCTPTime) {
        guard isPartialReliabilityNegotiated else { return }
        guard outstanding.needsForwardTSN else {
            // The SACK that acknowledges a FORWARD-TSN acknowledges no DATA, so the per-path rule that stops T3-rtx
            // (RFC 9260 §6.3.2 R2) never saw it: with nothing outstanding no timer need run.
            if outstanding.isEmpty { for path in paths { timers.disarm(.t3rtx(path.id)) } }
            return
        }
        let point = outstanding.advancedPeerAckPoint
        if let last = lastForwardTSN, last.tsn == point,
            now - last.sentAt < (paths[sendPathID].rto.srtt ?? paths[sendPathID].rto.rto)
        {
            if !paths.contains(where: { timers.isArmed(.t3rtx($0.id)) }) {
                let path = sendPathID
                timers.arm(.t3rtx(path), at: now + paths[path].rto.rto)
            }
            return
        }
        isForwardTSNDue = true
    }

    /// RFC 3758 §3.5 A5: "Any time the T3-rtx timer expires, on any destination, the sender SHOULD try to advance
    /// the Advanced.Peer.Ack.Point". Returns true when a FORWARD-TSN is outstanding: the expiry then counts as a
    /// retransmission timeout (backoff, error counts) even with no DATA to retransmit, so a peer that never
    /// answers is given up on as RFC 9260 §8.1 says.
    func handleT3ExpiryForPartialReliability() -> Bool {
        guard isPartialReliabilityNegotiated, outstanding.needsForwardTSN else { return false }
        isForwardTSNDue = true
        return true
    }

    // MARK: - Receiver (RFC 3758 §3.6)

    /// FORWARD-TSN: moves the cumulative TSN, drops the reassembly state of the skipped TSNs, delivers the ordered
    /// messages that waited only for skipped ones, and acknowledges at once.
    func handleForwardTSN(_ chunk: ForwardTSNChunk, path: PathID, now: SCTPTime) {
        output.partialReliability.forwardTSNsReceived += 1
        // A new cumulative TSN further ahead than the data tracker accepts DATA is no TSN the peer could have sent
        // and had abandoned.
        guard !dataTracker.isBeyondWindow(chunk.newCumulativeTSN) else {
            output.drop(.forwardTSNBeyondWindow)
            return
        }
        lastDataPathID = path
        // RFC 3758 §3.6: a stale FORWARD-TSN "MUST NOT update its Cumulative TSN. The receiver SHOULD send a SACK";
        // the tracker asks for one either way.
        guard dataTracker.handleForwardTSN(newCumulativeTSN: chunk.newCumulativeTSN, now: now) else { return }
        let skipped = chunk.streams.lazy.filter { $0.streamID.rawValue < self.inboundStreams }.map {
            ($0.streamID, $0.ssn)
        }
        reassembly.handleForwardTSN(newCumulativeTSN: chunk.newCumulativeTSN, skipped: skipped)
        if configuration.multipath.receiverBufferSplitting {
            receiveSplitter.release(through: dataTracker.cumulativeTSN)
        }
        deliverReassembledMessages()
    }
}
