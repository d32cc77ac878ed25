import NIOCore

/// The four-way handshake of RFC 9260 §5.1 from the initiator's side, and INIT/INIT-ACK received by an existing
/// association (§5.2).
extension Association {
    /// Starts the handshake: INIT to `remote` from `local`, T1-init running, COOKIE-WAIT.
    func connect(remote: SCTPSocketAddress, local: SCTPSocketAddress?, now: SCTPTime) {
        addPath(remote: remote, local: local, confirmed: true)
        let initChunk = makeInitChunk()
        state = .cookieWait(.init(initChunk: initChunk))
        // RFC 9260 §8.5.1: "the Verification Tag MUST be set to 0" in a packet carrying INIT.
        send([.initiation(initChunk)], path: paths.primaryID, now: now, tag: .zero)
        timers.arm(.t1Init, at: now + paths.primary.rto.rto)
    }

    /// Our INIT: our tag and initial TSN, the streams we ask for, and what we announce. The same on every
    /// retransmission and after a Stale Cookie (RFC 9260 §5.2.6).
    func makeInitChunk() -> InitChunk {
        InitChunk(
            initiateTag: parameters.localTag, advertisedReceiverWindowCredit: UInt32(configuration.receiveBufferSize),
            outboundStreams: configuration.outboundStreams, inboundStreams: configuration.maxInboundStreams,
            initialTSN: parameters.localInitialTSN, parameters: localInitParameters())
    }

    /// The Supported Extensions parameter (RFC 5061 §4.2.7) listing every extension chunk we use: AUTH and ASCONF
    /// for dynamic addresses, NR-SACK for CMT, FORWARD-TSN for PR-SCTP, which also gets its Forward-TSN-Supported
    /// parameter (RFC 3758 §3.3.1).
    static func localFeatureParameters(_ configuration: SCTPConfiguration, zeroChecksum: Bool = true) -> [Parameter] {
        let types = localExtensionTypes(configuration)
        let method = zeroChecksum ? configuration.zeroChecksumMethod : nil
        return (configuration.partialReliability ? [.forwardTSNSupported] : [])
            + (types.isEmpty ? [] : [.supportedExtensions(types)])
            + (method.map { [.zeroChecksumAcceptable($0)] } ?? [])
    }

    /// RFC 9653 §5.1: the peer announced, in its INIT or INIT-ACK, the alternate error detection method we use.
    static func peerAcceptsZeroChecksum(_ parameters: [Parameter], configuration: SCTPConfiguration) -> Bool {
        guard let method = configuration.zeroChecksumMethod else { return false }
        return parameters.contains { parameter in
            if case .zeroChecksumAcceptable(let peerMethod) = parameter { return peerMethod == method }
            return false
        }
    }

    static func localExtensionTypes(_ configuration: SCTPConfiguration) -> [UInt8] {
        (configuration.partialReliability ? [ForwardTSNChunk.type] : [])
            + (configuration.supportsDynamicAddresses ? dynamicAddressExtensions : [])
            + (configuration.multipath.nrSack ? [NRSackChunk.type] : [])
    }

    func handleT1InitExpiry(now: SCTPTime) {
        guard case .cookieWait(var wait) = state else { return }
        wait.retransmissions += 1
        // RFC 9260 §5.1 C: "If the T1-init timer expires, the endpoint MUST retransmit INIT and restart the T1-init
        // timer without changing state. This MUST be repeated up to 'Max.Init.Retransmits' times."
        guard wait.retransmissions <= configuration.maxInitRetransmissions else {
            close(.handshakeTimedOut)
            return
        }
        state = .cookieWait(wait)
        paths.primary.rto.backOff()
        send([.initiation(wait.initChunk)], path: paths.primaryID, now: now, tag: .zero)
        timers.arm(.t1Init, at: now + paths.primary.rto.rto)
    }

    func handleT1CookieExpiry(now: SCTPTime) {
        guard case .cookieEchoed(var echoed) = state else { return }
        echoed.retransmissions += 1
        guard echoed.retransmissions <= configuration.maxInitRetransmissions else {
            close(.handshakeTimedOut)
            return
        }
        state = .cookieEchoed(echoed)
        paths.primary.rto.backOff()
        send([.cookieEcho(echoed.cookie)], path: paths.primaryID, now: now)
        timers.arm(.t1Cookie, at: now + paths.primary.rto.rto)
    }

    /// INIT-ACK in COOKIE-WAIT (RFC 9260 §5.1 C): take the peer's tag, TSN and streams, echo the cookie.
    func handleInitAck(
        _ ack: InitAckChunk, from source: SCTPSocketAddress, to local: SCTPSocketAddress, now: SCTPTime
    ) {
        // RFC 9260 §5.2.3: an INIT-ACK in any other state "MUST be discarded".
        guard case .cookieWait = state else { return }
        // RFC 9260 §3.3.3: a zero Initiate Tag, or zero streams, is a protocol error answered with ABORT.
        guard ack.initiateTag != .zero, ack.outboundStreams > 0, ack.inboundStreams > 0 else {
            abort(causes: [.invalidMandatoryParameter], reason: .protocolViolation("invalid INIT-ACK"), now: now)
            return
        }
        var cookie: ByteBuffer?
        var features: NegotiatedFeatures = []
        var unrecognized: [ErrorCause] = []
        parameters: for parameter in ack.parameters {
            switch parameter {
            case .stateCookie(let c): cookie = c
            case .ipv4Address(let ip), .ipv6Address(let ip):
                // The peer's other addresses, reachable at the encapsulation port the INIT-ACK came from
                // (RFC 6951 §5.4). Each is confirmed with a HEARTBEAT before data goes there (§5.4). Those beyond
                // `maxPathsPerAssociation` are ignored (and counted by `addPath`).
                if ip != source.ip && !ip.isWildcard {
                    addPath(remote: SCTPSocketAddress(ip: ip, port: source.port), local: nil, confirmed: false)
                }
            case .supportedExtensions(let types):
                if types.contains(NRSackChunk.type) && configuration.multipath.nrSack { features.insert(.nrSack) }
            case .unknown(let type, let value):
                let action = UnrecognizedAction(parameterType: type)
                if action.shouldReport {
                    unrecognized.append(.unrecognizedParameters(Parameter.unrecognizedTLV(type: type, value: value)))
                }
                // RFC 9260 §3.2.1: 00/01 "stop processing this parameter and do not process further parameters".
                if !action.shouldSkip { break parameters }
            default:
                break
            }
        }
        // RFC 3758 §3.3: PR-SCTP only when both ends announce it.
        if configuration.partialReliability, Association.peerSupportsForwardTSN(ack.parameters) {
            features.insert(.forwardTSN)
        }
        if Association.peerAcceptsZeroChecksum(ack.parameters, configuration: configuration) {
            features.insert(.zeroChecksum)
        }
        guard let cookie else {
            // RFC 9260 §5.1: the State Cookie is mandatory in INIT-ACK.
            abort(
                causes: [.missingMandatoryParameter([7])], reason: .protocolViolation("INIT-ACK without cookie"),
                now: now)
            return
        }
        // The path the INIT went out on: the INIT-ACK's source is the peer's real (possibly NATed) address.
        if let i = paths.firstIndex(where: { $0.remoteAddress.ip == source.ip }) {
            paths[i].remoteAddress = source
            if paths[i].localAddress == nil || paths[i].localAddress!.ip.isWildcard { paths[i].localAddress = local }
            rebuildPathLookups()
        }
        let (dynamic, peerAuth) = Association.dynamicAddressFeatures(
            peerParameters: ack.parameters, configuration: configuration)
        adopt(
            AssociationParameters(
                localTag: parameters.localTag, peerTag: ack.initiateTag, localInitialTSN: parameters.localInitialTSN,
                peerInitialTSN: ack.initialTSN, peerInitialReceiverWindow: ack.advertisedReceiverWindowCredit,
                outboundStreams: min(configuration.outboundStreams, ack.inboundStreams),
                inboundStreams: min(configuration.maxInboundStreams, ack.outboundStreams),
                features: features.union(dynamic), localAuthRandom: auth.local?.random ?? [], peerAuth: peerAuth))
        peerAdvertisedWindow = ack.advertisedReceiverWindowCredit
        timers.disarm(.t1Init)
        let echo = CookieEchoChunk(cookie: cookie)
        state = .cookieEchoed(.init(cookie: echo))
        var chunks: [Chunk] = [.cookieEcho(echo)]
        // RFC 9260 §5.2.3 / §3.3.10.8: report unrecognized parameters in an ERROR bundled with the COOKIE-ECHO.
        if !unrecognized.isEmpty { chunks.append(.error(ErrorChunk(causes: unrecognized))) }
        send(chunks, path: paths.primaryID, now: now)
        timers.arm(.t1Cookie, at: now + paths.primary.rto.rto)
    }

    /// COOKIE-ACK in COOKIE-ECHOED (RFC 9260 §5.1 E).
    func handleCookieAck(now: SCTPTime) {
        guard case .cookieEchoed = state else { return }
        timers.disarm(.t1Cookie)
        enterEstablished(now: now)
    }

    /// Both sides: ESTABLISHED, heartbeats armed, unconfirmed paths probed at once so they are usable within one
    /// round trip.
    func enterEstablished(now: SCTPTime) {
        state = .established
        errorCount = 0
        output.events.append(.established(id, outboundStreams: outboundStreams, inboundStreams: inboundStreams))
        logger.info("association established", metadata: ["peer": "\(paths.primary.remoteAddress)"])
        for i in paths.indices {
            if paths[i].isConfirmed {
                timers.arm(.heartbeat(paths[i].id), at: paths[i].nextHeartbeatDeadline(after: now))
            } else {
                sendHeartbeat(path: paths[i].id, now: now)
            }
        }
    }

    // MARK: - The passive side (RFC 9260 §5.1.5, §5.2.4)

    /// A new association made for an accepted State Cookie: it takes the cookie's parameters, its first path is
    /// the one the COOKIE-ECHO came on (confirmed by the handshake itself, RFC 9260 §5.4), and it is ESTABLISHED.
    func handleCookieAccepted(
        _ parameters: AssociationParameters, from source: SCTPSocketAddress, to local: SCTPSocketAddress,
        now: SCTPTime
    ) {
        adopt(parameters)
        peerAdvertisedWindow = parameters.peerInitialReceiverWindow
        addPath(remote: source, local: local, confirmed: true)
        enterEstablished(now: now)
    }

    /// A COOKIE-ECHO carrying our tag (RFC 9260 §5.2.4): in case B, an INIT collision, with a new peer tag and
    /// the peer's new parameters, taken whole; in case D, the same cookie again, with nothing new (nil). Either
    /// way the handshake is over: ESTABLISHED if not yet. The a_rwnd we learnt from an INIT-ACK, if any, stays the
    /// one sender-side buffer splitting uses until the first SACK.
    func handleCookieEcho(adopting parameters: AssociationParameters?, now: SCTPTime) {
        timers.disarm(.t1Init)
        timers.disarm(.t1Cookie)
        if let parameters { adopt(parameters) }
        if !state.isEstablishedOrLater { enterEstablished(now: now) }
    }
}
