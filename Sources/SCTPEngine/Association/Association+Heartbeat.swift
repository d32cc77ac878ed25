import NIOCore

/// Path confirmation and liveness with HEARTBEAT (RFC 9260 §8.3, §5.4), which also keeps NAT bindings open.
extension Association {
    /// Heartbeat Info we send and get back: a nonce, the send time and the path, so the ACK needs no lookup state.
    struct HeartbeatInfo {
        var nonce: UInt64
        var sentAt: SCTPTime
        var pathID: PathID

        func encode() -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(nonce)
            buffer.writeInteger(sentAt.nanoseconds)
            buffer.writeInteger(UInt32(truncatingIfNeeded: pathID.rawValue))
            return buffer
        }

        init(nonce: UInt64, sentAt: SCTPTime, pathID: PathID) {
            self.nonce = nonce
            self.sentAt = sentAt
            self.pathID = pathID
        }

        init?(_ info: ByteBuffer) {
            var b = info
            guard b.readableBytes == 20, let nonce: UInt64 = b.readInteger(), let sent: Int64 = b.readInteger(),
                let path: UInt32 = b.readInteger()
            else { return nil }
            self.init(nonce: nonce, sentAt: SCTPTime(nanoseconds: sent), pathID: PathID(Int(path)))
        }
    }

    func sendHeartbeat(path: PathID, now: SCTPTime) {
        let nonce = random.next()
        paths[path].recordHeartbeatSent(nonce: nonce, now: now)
        let info = HeartbeatInfo(nonce: nonce, sentAt: now, pathID: path)
        send([.heartbeat(HeartbeatChunk(info: info.encode()))], path: path, now: now)
        // RFC 9260 §8.3: a HEARTBEAT not acknowledged within one RTO counts against the path, so the timer first
        // waits that long for the answer; the answer arms it for the next heartbeat, RTO + HB.interval on. (It used
        // to wait until that next heartbeat was due: a heartbeat `refreshRoundTrips` sent to an idle data path that
        // had died went uncounted for 15 s, and sparse data went back there when the other path's RTT rose.) An
        // unconfirmed or failing path is probed every RTO in any case.
        let next = paths[path].isActive ? now + paths[path].rto.rto : now + failedPathProbeInterval(paths[path])
        timers.arm(.heartbeat(path), at: next)
    }

    func handleHeartbeatTimer(pathID: PathID, now: SCTPTime) {
        guard state.isEstablishedOrLater, let i = paths.position(of: pathID) else { return }
        if paths[i].isActive && paths[i].heartbeat.isOutstanding && paths[i].heartbeat.dataAcknowledgedSinceSent {
            // Unanswered in an RTO, but data sent here after it was acknowledged: the path delivers (its answer met
            // a queue, a stalled peer, or a loss). Nothing counts; the next heartbeat goes when it is due.
            paths[i].giveUpOutstandingHeartbeat()
            timers.arm(.heartbeat(pathID), at: paths[i].nextHeartbeatDeadline(after: now))
            return
        }
        if paths[i].heartbeat.isOutstanding {
            // RFC 9260 §8.3: an unanswered HEARTBEAT counts against the destination and the association.
            paths[i].rto.backOff()
            reportStateChange(paths[i].recordError(), path: pathID)
            if paths[i].isConfirmed, countAssociationError(now: now) { return }
        }
        sendHeartbeat(path: pathID, now: now)
    }

    /// RFC 9260 §8.3: "The receiver of the HEARTBEAT chunk SHOULD immediately respond with a HEARTBEAT ACK chunk
    /// that contains the Heartbeat Information TLV ... copied unchanged", sent to where it came from.
    func handleHeartbeat(_ chunk: HeartbeatChunk, from source: SCTPSocketAddress, to local: SCTPSocketAddress) {
        reply([.heartbeatAck(HeartbeatAckChunk(info: chunk.info))], to: source, from: local, tag: peerTag)
    }

    func handleHeartbeatAck(_ chunk: HeartbeatAckChunk, now: SCTPTime) {
        guard let info = HeartbeatInfo(chunk.info), let i = paths.position(of: info.pathID),
            let rtt = paths[i].handleHeartbeatAck(nonce: info.nonce, sentAt: info.sentAt, now: now)
        else { return }
        paths[i].measureRoundTrip(rtt, now: now)
        errorCount = 0
        reportStateChange(paths[i].confirm(), path: info.pathID)
        timers.arm(.heartbeat(info.pathID), at: paths[i].nextHeartbeatDeadline(after: now))
    }
}
