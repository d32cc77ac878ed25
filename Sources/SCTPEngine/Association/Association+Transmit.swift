import NIOCore

/// Packet assembly: bundles a pending SACK, retransmissions and new DATA into MTU-sized packets on every path
/// that congestion control allows (RFC 9260 §6.1, §6.10), and keeps each path's T3-rtx running.
extension Association {
    /// Bytes of chunk header in front of DATA's user data.
    static let dataChunkOverhead = 16

    var mayCarryData: Bool {
        switch state {
        case .established, .shutdownPending, .shutdownReceived: return true
        case .cookieWait, .cookieEchoed, .shutdownSent, .shutdownAckSent, .closed: return false
        }
    }

    /// Indices of the paths that get new data, in the order they are served. Without CMT: the one send path.
    var dataPathIndices: [Int] {
        [sendPathIndex]
    }

    /// The path for retransmissions: RFC 9260 §6.4.1 sends them to an active alternate when there is one; among
    /// several we take the largest ssthresh (CMT's RTX-SSTHRESH), which is the same path when there is one.
    func retransmissionPathIndex(excluding failed: PathID?) -> Int {
        let candidates = paths.indices.filter { paths[$0].isActive && paths[$0].id != failed }
        return candidates.max(by: { paths[$0].congestion.ssthresh < paths[$1].congestion.ssthresh }) ?? sendPathIndex
    }

    /// Sends everything that may go now.
    func transmit(now: SCTPTime) {
        guard !isClosed else { return }
        var sack: Chunk? = (state.isEstablishedOrLater && dataTracker.isSackDue(now: now)) ? makeSackChunk() : nil
        if mayCarryData {
            if fastRetransmitPending {
                fastRetransmitPending = false
                // RFC 9260 §7.2.4 3: one packet of the marked chunks goes at once, whatever cwnd says.
                let i = retransmissionPathIndex(excluding: nil)
                sendDataPacket(pathIndex: i, now: now, sack: &sack, ignoreCwnd: true)
            }
            // Retransmissions marked by T3 expiry, then new data, per path while cwnd allows.
            for i in dataPathIndices {
                while sendDataPacket(pathIndex: i, now: now, sack: &sack, ignoreCwnd: false) {}
            }
        }
        if let sack {
            send([sack], pathIndex: lastDataPathIndex < paths.count ? lastDataPathIndex : sendPathIndex, now: now)
        }
    }

    /// Builds and sends one packet for path `i`. Returns false when there was nothing to send.
    @discardableResult
    func sendDataPacket(pathIndex i: Int, now: SCTPTime, sack: inout Chunk?, ignoreCwnd: Bool) -> Bool {
        let pathID = paths[i].id
        let mtu = paths[i].mtu
        var builder = PacketBuilder(
            header: CommonHeader(sourcePort: localPort, destinationPort: peerPort, verificationTag: peerTag, checksum: 0),
            capacity: mtu)
        if let s = sack, i == lastDataPathIndex || !paths.indices.contains(lastDataPathIndex) {
            builder.add(s)
            sack = nil
        }
        var dataBytes = 0
        var flight = outstanding.flightSize(on: pathID)
        let cwnd = paths[i].congestion.cwnd
        func cwndAllows() -> Bool { ignoreCwnd || flight < cwnd }

        // Retransmissions first (RFC 9260 §6.1 C: "retransmit ... before sending new DATA").
        while let size = outstanding.peekRetransmissionSize(), cwndAllows(),
            builder.size + Self.dataChunkOverhead + size <= mtu
        {
            guard let chunk = outstanding.pollRetransmission(to: pathID, now: now) else { break }
            builder.add(.data(Self.wireChunk(chunk)))
            dataBytes += size
            flight += size
            paths[i].counters.retransmissions += 1
        }
        // New data, within cwnd and the peer's window (RFC 9260 §6.1 A, B). With nothing in flight one chunk may
        // probe a zero window.
        if !ignoreCwnd {
            while !sendQueue.isEmpty, flight < cwnd {
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
                guard let fragment = sendQueue.produce(maxPayload: allowed) else { break }
                let chunk = outstanding.insert(fragment, path: pathID, now: now)
                builder.add(.data(Self.wireChunk(chunk)))
                let size = fragment.payload.readableBytes
                dataBytes += size
                flight += size
                peerReceiverWindow = UInt32(max(0, Int(peerReceiverWindow) - size))
            }
        }
        guard !builder.isEmpty else { return false }
        emit(builder.finish(), pathIndex: i, dataBytes: dataBytes, now: now)
        if dataBytes > 0, !timers.isArmed(.t3rtx(pathID)) {
            timers.arm(.t3rtx(pathID), at: now + paths[i].rto.rto)
        }
        if sendQueue.pollWritable() { output.events.append(.writable(id)) }
        return dataBytes > 0
    }

    static func wireChunk(_ chunk: OutgoingDataChunk) -> DataChunk {
        DataChunk(
            tsn: chunk.tsn, streamID: chunk.streamID, ssn: chunk.ssn, ppid: chunk.ppid,
            isUnordered: chunk.isUnordered, isBeginning: chunk.isBeginning, isEnding: chunk.isEnding,
            isImmediate: chunk.isImmediate, userData: chunk.payload)
    }
}
