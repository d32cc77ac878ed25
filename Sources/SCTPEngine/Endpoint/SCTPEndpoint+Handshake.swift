import Crypto
import NIOCore

/// The passive side of the handshake: INIT answered without keeping state (RFC 9260 §5.1.3), COOKIE-ECHO turned
/// into an association (§5.1.5), and the collision and restart cases of §5.2.
extension SCTPEndpoint {
    /// `verified`: the layer below proved the INIT's bytes (`SCTPDatagram.integrityVerified`), so the association's
    /// packets will be protected the same way and a zero checksum may be offered (RFC 9653).
    func handleInitPacket(
        _ packet: RawPacket, from source: SCTPSocketAddress, to local: SCTPSocketAddress, owner: SCTPOwner,
        verified: Bool, now: SCTPTime
    ) {
        // RFC 9260 §8.5.1 A: the packet carrying INIT has tag 0 and "the INIT chunk MUST be the only chunk".
        guard packet.header.verificationTag == .zero, packet.chunks.count == 1,
            case .initiation(let initChunk)? = try? Chunk(decoding: packet.chunks[0])
        else {
            output.drop(.badInitPacket)
            return
        }
        // RFC 9260 §3.3.2: "If the value of the Initiate Tag in a received INIT chunk is found to be 0, the
        // receiver MUST silently discard the packet." Zero stream counts are answered with ABORT.
        guard initChunk.initiateTag != .zero else {
            output.drop(.initWithZeroTag)
            return
        }
        guard initChunk.outboundStreams > 0, initChunk.inboundStreams > 0 else {
            sendRaw(
                [.abort(AbortChunk(isTagReflected: false, causes: [.invalidMandatoryParameter]))],
                tag: initChunk.initiateTag, sourcePort: configuration.localPort,
                destinationPort: packet.header.sourcePort, to: source, from: local, owner: owner)
            return
        }
        let peerPort = packet.header.sourcePort
        // Only the same owner's association can collide with this INIT or be restarted by it.
        let existing = association(withPeer: source, peerPort: peerPort, owner: owner)

        var localTag = VerificationTag(uniqueTag())
        var localTSN = TSN(random.nonZero32())
        var localTie = VerificationTag.zero
        var peerTie = VerificationTag.zero
        if let existing {
            switch existing.state {
            case .cookieWait(let wait):
                // RFC 9260 §5.2.1: answer "using the same parameters it sent in its original INIT chunk (including
                // its Initiate Tag, unchanged)".
                localTag = wait.initChunk.initiateTag
                localTSN = wait.initChunk.initialTSN
            case .cookieEchoed:
                localTag = existing.localTag
                localTSN = existing.parameters.localInitialTSN
            case .shutdownAckSent:
                // RFC 9260 §9.2: an INIT in SHUTDOWN-ACK-SENT is answered with SHUTDOWN-ACK.
                existing.send([.shutdownAck(ShutdownAckChunk())], path: existing.sendPathID, now: now)
                settle(existing)
                return
            default:
                // RFC 9260 §5.2.2: a new tag, with the current tags as tie-tags so a later COOKIE-ECHO can be
                // recognised as a restart.
                localTie = existing.localTag
                peerTie = existing.peerTag
            }
        }

        var features: NegotiatedFeatures = []
        var peerAddresses: [SCTPIPAddress] = []
        var unrecognized: [Parameter] = []
        parameters: for parameter in initChunk.parameters {
            switch parameter {
            case .ipv4Address(let ip), .ipv6Address(let ip):
                peerAddresses.append(ip)
            case .supportedExtensions(let types):
                if types.contains(NRSackChunk.type) { features.insert(.nrSack) }
            case .unknown(let type, let value):
                let action = UnrecognizedAction(parameterType: type)
                if action.shouldReport {
                    unrecognized.append(.unrecognizedParameter(Parameter.unrecognizedTLV(type: type, value: value)))
                }
                // RFC 9260 §3.2.1: 00 and 01 stop processing the chunk's further parameters.
                if !action.shouldSkip { break parameters }
            default:
                break
            }
        }
        if !configuration.multipath.nrSack { features.remove(.nrSack) }
        // RFC 3758 §3.3.2: PR-SCTP only when both ends announce it; a peer that does not never gets FORWARD-TSN.
        if configuration.partialReliability, Association.peerSupportsForwardTSN(initChunk.parameters) {
            features.insert(.forwardTSN)
        }
        // RFC 9653: offered only to a peer whose packets arrive protected by the method; used when it offers it too.
        if verified, Association.peerAcceptsZeroChecksum(initChunk.parameters, configuration: configuration) {
            features.insert(.zeroChecksum)
        }
        // RFC 4895 §6.1 and RFC 5061 §4.2.7: AUTH and ASCONF. Our RANDOM must survive in the cookie along with the
        // peer's parameters; a collision answers with the RANDOM of the INIT already sent.
        let (dynamic, peerAuth) = Association.dynamicAddressFeatures(
            peerParameters: initChunk.parameters, configuration: configuration)
        features.formUnion(dynamic)
        let localAuthRandom =
            configuration.supportsDynamicAddresses
            ? (existing?.auth.local?.random ?? random.bytes(AuthParameters.randomLength)) : []

        let negotiated = AssociationParameters(
            localTag: localTag, peerTag: initChunk.initiateTag, localInitialTSN: localTSN,
            peerInitialTSN: initChunk.initialTSN, peerInitialReceiverWindow: initChunk.advertisedReceiverWindowCredit,
            outboundStreams: min(configuration.outboundStreams, initChunk.inboundStreams),
            inboundStreams: min(configuration.maxInboundStreams, initChunk.outboundStreams), features: features,
            localAuthRandom: localAuthRandom, peerAuth: peerAuth)
        let cookie = StateCookie(
            createdAt: now, lifetime: configuration.validCookieLife, parameters: negotiated, localTieTag: localTie,
            peerTieTag: peerTie, peerSCTPPort: peerPort, peerAddresses: peerAddresses, owner: owner)
        var parameters: [Parameter] = [.stateCookie(cookie.encode(secret: cookieKey))]
        for address in advertisedAddresses where !address.isWildcard {
            parameters.append(address.isIPv4 ? .ipv4Address(address) : .ipv6Address(address))
        }
        parameters += Association.localInitAckParameters(
            random: localAuthRandom, configuration: configuration, zeroChecksum: verified)
        parameters += unrecognized
        let ack = InitAckChunk(
            initiateTag: localTag, advertisedReceiverWindowCredit: UInt32(configuration.receiveBufferSize),
            outboundStreams: configuration.outboundStreams, inboundStreams: configuration.maxInboundStreams,
            initialTSN: localTSN, parameters: parameters)
        // RFC 9260 §5.1: the INIT-ACK goes to the source of the INIT; RFC 6951 §5.4: to its UDP source port too.
        sendRaw(
            [.initiationAck(ack)], tag: initChunk.initiateTag, sourcePort: configuration.localPort,
            destinationPort: peerPort, to: source, from: local, owner: owner)
    }

    func handleCookieEchoPacket(
        _ packet: RawPacket, from source: SCTPSocketAddress, to local: SCTPSocketAddress, owner: SCTPOwner,
        now: SCTPTime
    ) {
        guard case .cookieEcho(let echo)? = try? Chunk(decoding: packet.chunks[0]) else {
            output.drop(.malformedCookieEcho)
            return
        }
        let cookie: StateCookie
        do {
            cookie = try StateCookie.decode(echo.cookie, secret: cookieKey)
        } catch {
            // RFC 9260 §5.1.5 2: a cookie whose MAC does not verify is silently discarded.
            output.drop(.invalidCookie)
            return
        }
        // RFC 9260 §5.1.5 3: the packet's tag must be the one in the cookie.
        guard packet.header.verificationTag == cookie.parameters.localTag,
            packet.header.sourcePort == cookie.peerSCTPPort
        else {
            output.drop(.cookieTagMismatch)
            return
        }
        // A cookie made for one owner's INIT creates nothing for another owner.
        guard cookie.owner == owner else {
            output.drop(.cookieOfAnotherOwner)
            return
        }
        let existing = association(withPeer: source, peerPort: packet.header.sourcePort, owner: owner)

        // RFC 9260 §5.1.5 4: "If the State Cookie is expired, the endpoint MUST NOT ... and MUST send back an
        // ERROR chunk with a 'Stale Cookie' error cause". Only when no association matches (§5.2.4 handles others).
        let age = now - cookie.createdAt
        if age > cookie.lifetime, existing == nil || existing!.localTag != cookie.parameters.localTag {
            let staleness = UInt32(clamping: (age - cookie.lifetime).nanoseconds / 1000)
            sendRaw(
                [.error(ErrorChunk(causes: [.staleCookie(measureOfStaleness: staleness)]))],
                tag: cookie.parameters.peerTag,
                sourcePort: configuration.localPort, destinationPort: packet.header.sourcePort, to: source, from: local,
                owner: owner)
            return
        }

        let association: Association
        if let existing {
            let localMatches = existing.localTag == cookie.parameters.localTag
            let peerMatches = existing.peerTag == cookie.parameters.peerTag
            let tiesMatch = cookie.localTieTag == existing.localTag && cookie.peerTieTag == existing.peerTag
            if !localMatches && !peerMatches && tiesMatch {
                // §5.2.4 A: the peer restarted.
                if case .shutdownAckSent = existing.state {
                    existing.send(
                        [
                            .error(ErrorChunk(causes: [.cookieReceivedWhileShuttingDown])),
                            .shutdownAck(ShutdownAckChunk()),
                        ], path: existing.sendPathID, now: now)
                    settle(existing)
                    return
                }
                existing.close(.peerRestarted)
                settle(existing)
                association = acceptNew(cookie, from: source, to: local, now: now)
            } else if localMatches && !peerMatches {
                // §5.2.4 B: INIT collision: take the peer's new tag and parameters and enter ESTABLISHED. Our tag
                // matched, so the cookie was made in COOKIE-WAIT or COOKIE-ECHOED with our own initial TSN too.
                existing.handleCookieEcho(adopting: cookie.parameters, now: now)
                association = existing
            } else if !localMatches && peerMatches && cookie.localTieTag == .zero {
                // §5.2.4 C: a late cookie from a previous collision: discard.
                output.drop(.staleCollisionCookie)
                return
            } else if localMatches && peerMatches {
                // §5.2.4 D: the same cookie again: enter ESTABLISHED if not yet, and acknowledge.
                existing.handleCookieEcho(adopting: nil, now: now)
                association = existing
            } else {
                output.drop(.unmatchedCookie)
                return
            }
        } else {
            guard makeRoom(for: owner, cookie: cookie, from: source, to: local, now: now) else { return }
            association = acceptNew(cookie, from: source, to: local, now: now)
        }
        let cookiePath = association.path(forPacketFrom: source, to: local, now: now) ?? association.paths[0].id
        association.send([.cookieAck(CookieAckChunk())], path: cookiePath, now: now)
        // Chunks bundled after the COOKIE-ECHO (RFC 9260 §5.1: DATA may follow it) are processed now.
        if packet.chunks.count > 1 {
            var rest = packet
            rest.chunks.removeFirst()
            association.handle(rest, from: source, to: local, now: now)
        } else {
            association.transmit(now: now)
        }
        settle(association)
    }

    /// Enforces `maxAssociationsPerOwner` before a new association of `owner`: true when there is room, or when a
    /// quiet association of the same owner (most likely left behind by a client that restarted) was closed to
    /// make it. Otherwise the COOKIE-ECHO is refused with ABORT (Out of Resource, RFC 9260 §3.3.10.4), and false.
    private func makeRoom(
        for owner: SCTPOwner, cookie: StateCookie, from source: SCTPSocketAddress, to local: SCTPSocketAddress,
        now: SCTPTime
    ) -> Bool {
        guard let limit = configuration.maxAssociationsPerOwner, owner != .unauthenticated,
            let owned = byOwner[owner], owned.count >= limit
        else { return true }
        let quietest = owned.min { ($0.lastReceived ?? .zero) < ($1.lastReceived ?? .zero) }
        if let quietest, now - (quietest.lastReceived ?? .zero) >= configuration.quietAssociationAge {
            logger.info(
                "association replaced by a newer one of its owner",
                metadata: ["association": "\(quietest.id.rawValue)", "owner": "\(owner)"])
            quietest.abort(causes: [.outOfResource], reason: .replacedByNewerAssociation, now: now)
            settle(quietest)
            replacedAssociations += 1
            return true
        }
        refusedAssociations += 1
        output.events.append(.associationRefused(owner: owner, remote: source))
        sendRaw(
            [.abort(AbortChunk(isTagReflected: false, causes: [.outOfResource]))],
            tag: cookie.parameters.peerTag,
            sourcePort: configuration.localPort, destinationPort: cookie.peerSCTPPort, to: source, from: local,
            owner: owner)
        return false
    }

    private func acceptNew(
        _ cookie: StateCookie, from source: SCTPSocketAddress, to local: SCTPSocketAddress, now: SCTPTime
    ) -> Association {
        let association = makeAssociation(
            parameters: cookie.parameters, peerPort: cookie.peerSCTPPort, owner: cookie.owner)
        association.handleCookieAccepted(cookie.parameters, from: source, to: local, now: now)
        return association
    }
}
