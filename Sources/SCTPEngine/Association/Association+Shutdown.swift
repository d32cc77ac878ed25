/// Graceful shutdown of RFC 9260 §9.2 and ABORT reception (§9.1).
extension Association {
    /// The application's SHUTDOWN: wait for outstanding data, then send SHUTDOWN.
    func shutdown(now: SCTPTime) {
        switch state {
        case .cookieWait, .cookieEchoed:
            // Nothing was established: there is nothing to shut down gracefully.
            abort(causes: [], reason: .abortedLocally, now: now)
        case .established:
            state = .shutdownPending
            continueShutdown(now: now)
        case .shutdownPending, .shutdownSent, .shutdownReceived, .shutdownAckSent, .closed:
            break
        }
    }

    /// Moves a pending shutdown forward once everything we sent is acknowledged (RFC 9260 §9.2).
    func continueShutdown(now: SCTPTime) {
        guard sendQueue.isEmpty && outstanding.isEmpty else { return }
        switch state {
        case .shutdownPending:
            state = .shutdownSent
            sendShutdown(now: now)
            timers.arm(.t5ShutdownGuard, at: now + configuration.shutdownGuard)
        case .shutdownReceived:
            state = .shutdownAckSent
            send([.shutdownAck(ShutdownAckChunk())], path: sendPathID, now: now)
            timers.arm(.t2Shutdown, at: now + paths[sendPathID].rto.rto)
        default:
            break
        }
    }

    func sendShutdown(now: SCTPTime) {
        _ = dataTracker.makeSack(advertisedReceiverWindowCredit: advertisedReceiverWindow)
        timers.disarm(.delayedSack)
        send([.shutdown(ShutdownChunk(cumulativeTSNAck: dataTracker.cumulativeTSN))], path: sendPathID, now: now)
        timers.arm(.t2Shutdown, at: now + paths[sendPathID].rto.rto)
    }

    /// SHUTDOWN received (RFC 9260 §9.2): its cumulative TSN ack acts like a SACK's; stop accepting new data.
    func handleShutdown(_ chunk: ShutdownChunk, now: SCTPTime) {
        switch state {
        case .established, .shutdownPending:
            state = .shutdownReceived
            output.events.append(.shutdownReceived(id))
            processCumulativeAck(chunk.cumulativeTSNAck, now: now)
            continueShutdown(now: now)
        case .shutdownSent:
            // RFC 9260 §9.2: SHUTDOWN in SHUTDOWN-SENT: "send a SHUTDOWN ACK ... and move to SHUTDOWN-ACK-SENT".
            processCumulativeAck(chunk.cumulativeTSNAck, now: now)
            state = .shutdownAckSent
            timers.disarm(.t2Shutdown)
            send([.shutdownAck(ShutdownAckChunk())], path: sendPathID, now: now)
            timers.arm(.t2Shutdown, at: now + paths[sendPathID].rto.rto)
        case .shutdownReceived:
            processCumulativeAck(chunk.cumulativeTSNAck, now: now)
        case .shutdownAckSent, .cookieWait, .cookieEchoed, .closed:
            break
        }
    }

    /// SHUTDOWN-ACK received: answer SHUTDOWN-COMPLETE and close (RFC 9260 §9.2).
    func handleShutdownAck(now: SCTPTime) {
        switch state {
        case .shutdownSent, .shutdownAckSent:
            send([.shutdownComplete(ShutdownCompleteChunk(isTagReflected: false))], path: sendPathID, now: now)
            close(.shutdownComplete)
        case .cookieWait, .cookieEchoed:
            // RFC 9260 §9.2: in COOKIE-WAIT or COOKIE-ECHOED a SHUTDOWN-ACK is treated as out of the blue (§8.4 5):
            // reply SHUTDOWN-COMPLETE with the T bit set.
            send(
                [.shutdownComplete(ShutdownCompleteChunk(isTagReflected: true))], path: sendPathID,
                now: now, tag: peerTag == .zero ? localTag : peerTag)
        case .established, .shutdownPending, .shutdownReceived, .closed:
            break
        }
    }

    func handleShutdownComplete() {
        guard case .shutdownAckSent = state else { return }
        close(.shutdownComplete)
    }

    func handleT2ShutdownExpiry(now: SCTPTime) {
        if countAssociationError(now: now) { return }
        let path = sendPathID
        reportStateChange(paths[path].handleRetransmissionTimeout(), path: path)
        switch state {
        case .shutdownSent:
            sendShutdown(now: now)
        case .shutdownAckSent:
            send([.shutdownAck(ShutdownAckChunk())], path: sendPathID, now: now)
            timers.arm(.t2Shutdown, at: now + paths[sendPathID].rto.rto)
        default:
            break
        }
    }

    func handleAbort(_ chunk: AbortChunk) {
        let text = chunk.causes.map { "\($0)" }.joined(separator: ", ")
        close(.abortedByPeer(text.isEmpty ? "no cause" : text))
    }
}
