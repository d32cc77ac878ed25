import NIOCore

/// Dispatches the chunks of a packet the endpoint routed here, in order, following RFC 9260 §8.5 for the
/// verification tag and §3.2 for unknown chunk types.
extension Association {
    /// Without `transmitting`, what the packet calls for waits for the caller's `transmit(now:)`.
    func handle(
        _ packet: RawPacket, from source: SCTPSocketAddress, to local: SCTPSocketAddress, transmitting: Bool = true,
        now: SCTPTime
    ) {
        guard !isClosed, isTagAcceptable(packet) else {
            output.drop(.badVerificationTag)
            return
        }
        lastReceived = now
        // A packet carrying ASCONF may come from an address being added: never read it as a NAT rebinding.
        let carriesAsconf = packet.chunks.contains { $0.type == ASCONFChunk.type }
        let knownPath = path(forPacketFrom: source, to: local, allowsRebinding: !carriesAsconf, now: now)
        let authenticated = authenticatedRange(of: packet)
        if let id = knownPath { paths[id].recordReceived(bytes: packet.buffer.readableBytes) }
        let packetPath = knownPath ?? paths.primaryID
        var hadData = false
        var unrecognized: [ErrorCause] = []

        // By index, reading each chunk in place: iterating the array copied every chunk (a retain and a release of
        // its slice per chunk).
        chunks: for index in packet.chunks.indices {
            // RFC 4895 §6.3: a failed AUTH takes the chunks it covers with it; a chunk type we require
            // authenticated is discarded unless a valid AUTH precedes it.
            if let failed = authenticated.failedAt, index >= failed { break chunks }
            if auth.localRequiresAuthentication(packet.chunks[index].type), !authenticated.isAuthenticated(index) {
                output.drop(.unauthenticatedChunk)
                continue
            }
            let chunk: Chunk
            do {
                chunk = try Chunk(decoding: packet.chunks[index])
            } catch {
                output.drop(.malformedChunk)
                logger.debug("malformed chunk", metadata: ["error": "\(error)"])
                break chunks
            }
            switch consume chunk {
            case .data(let data):
                guard state.isEstablishedOrLater else { continue }
                if case .shutdownAckSent = state { continue }
                hadData = true
                let route = ArrivalRoute(local: local, remote: source)
                guard handleData(data, path: packetPath, route: route, now: now) else { return }
            case .sack(let sack):
                guard state.isEstablishedOrLater else { continue }
                handleSack(sack, now: now)
            case .heartbeat(let heartbeat):
                handleHeartbeat(heartbeat, from: source, to: local)
            case .heartbeatAck(let ack):
                handleHeartbeatAck(ack, now: now)
            case .initiationAck(let ack):
                handleInitAck(ack, from: source, to: local, now: now)
            case .cookieAck:
                handleCookieAck(now: now)
            case .abort(let abort):
                handleAbort(abort)
                return
            case .shutdown(let shutdown):
                handleShutdown(shutdown, now: now)
            case .shutdownAck:
                handleShutdownAck(now: now)
            case .shutdownComplete:
                handleShutdownComplete()
                return
            case .error(let error):
                handleError(error, now: now)
            case .unknown(let unknown):
                let action = UnrecognizedAction(chunkType: unknown.type)
                if action.shouldReport, let bytes = packet.chunks[index].bytes(in: packet) {
                    unrecognized.append(.unrecognizedChunkType(bytes))
                }
                if !action.shouldSkip { break chunks }
            case .initiation, .cookieEcho:
                // Routed to the endpoint, which handles them before any association sees the packet.
                break
            case .auth:
                // Verified above, before any chunk it covers.
                break
            case .asconf(let request):
                handleAsconf(request, from: source, to: local, now: now)
            case .asconfAck(let ack):
                handleAsconfAck(ack, now: now)
            case .nrSack(let sack):
                guard state.isEstablishedOrLater, features.contains(.nrSack) else { continue }
                handleNRSack(sack, now: now)
            case .forwardTSN(let forward):
                guard state.isEstablishedOrLater else { continue }
                if case .shutdownAckSent = state { continue }
                guard isPartialReliabilityNegotiated else {
                    // RFC 3758 §3.3.1: without the parameter an endpoint "MUST instead act as if it does NOT support
                    // the FORWARD TSN chunk, returning an ERROR to the peer upon receipt of any FORWARD TSN".
                    output.drop(.forwardTSNNotNegotiated)
                    if let bytes = packet.chunks[index].bytes(in: packet) {
                        unrecognized.append(.unrecognizedChunkType(bytes))
                    }
                    continue
                }
                handleForwardTSN(forward, path: packetPath, now: now)
            case .ecne, .cwr, .idata, .iForwardTSN, .reconfig, .pad:
                // Not negotiated: we never announce these extensions, so a peer must not send them. Ignore.
                break
            }
            if isClosed { return }
        }
        if !unrecognized.isEmpty {
            // RFC 9260 §3.2: report unrecognized chunks "in an ERROR chunk using the 'Unrecognized Chunk Type'
            // error cause".
            send([.error(ErrorChunk(causes: unrecognized))], path: packetPath, now: now)
        }
        if hadData { scheduleSack(now: now) }
        maintainPaths(now: now)
        if transmitting { transmit(now: now) }
    }

    /// RFC 9260 §8.5: every packet carries our tag, except ABORT and SHUTDOWN-COMPLETE with the T bit, which
    /// carry the peer's (§8.5.1 B, C).
    func isTagAcceptable(_ packet: RawPacket) -> Bool {
        let tag = packet.header.verificationTag
        if let first = packet.chunks.first, first.type == AbortChunk.type || first.type == ShutdownCompleteChunk.type {
            let reflected = first.flags & 1 != 0
            return reflected ? tag == peerTag : tag == localTag
        }
        // RFC 9260 §8.5.1 A: in COOKIE-WAIT the INIT-ACK must carry our tag, like everything else.
        return tag == localTag
    }

    /// ERROR chunks: a Stale Cookie in COOKIE-ECHOED restarts the handshake (RFC 9260 §5.2.6); the rest is logged,
    /// at most `LogRateLimiter`'s burst per interval (a peer may put many causes in every packet).
    func handleError(_ chunk: ErrorChunk, now: SCTPTime) {
        for cause in chunk.causes {
            if case .staleCookie = cause, case .cookieEchoed(let echoed) = state {
                timers.disarm(.t1Cookie)
                guard echoed.retransmissions < configuration.maxInitRetransmissions else {
                    close(.handshakeTimedOut)
                    return
                }
                let initChunk = makeInitChunk()
                state = .cookieWait(.init(initChunk: initChunk, retransmissions: echoed.retransmissions + 1))
                send([.initiation(initChunk)], path: paths.primaryID, now: now, tag: .zero)
                timers.arm(.t1Init, at: now + paths.primary.rto.rto)
                return
            }
            if let heldBack = logLimits.peerError.admit(now: now) {
                logger.info("peer reported error", metadata: ["cause": "\(cause)", "held_back": "\(heldBack)"])
            }
        }
    }
}
