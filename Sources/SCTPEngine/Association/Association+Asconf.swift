import NIOCore

/// Dynamic address reconfiguration (RFC 5061) for one association, shaped for NATs: an address is added by
/// sending, from that address, an ASCONF whose Add IP names the wildcard, so the peer takes whatever source
/// address and port the NAT gave the packet. One ASCONF is outstanding at a time; later requests wait in a queue.
extension Association {
    // MARK: - Sender (RFC 5061 §5.1)

    /// Queues an address change and sends it if no ASCONF is outstanding.
    func requestAddressChange(_ request: AsconfState.Request, now: SCTPTime) throws(SCTPError) {
        guard state.isEstablishedOrLater, !isClosed else { throw .notEstablished }
        // RFC 5061 §4.1.1: ASCONF "MUST be sent in an authenticated way", so without AUTH there is none.
        guard features.contains(.asconf), auth.isNegotiated else { throw .dynamicAddressesNotNegotiated }
        asconf.queue.append(request)
        sendNextAsconf(now: now)
    }

    /// The peer address an ASCONF goes to when the caller names none: the peer address that the fewest of our
    /// local addresses send to, the earliest known among equals. With two peer addresses the second local address
    /// goes to the one the primary does not use, and a third goes back to the first: each peer address carries
    /// its share of the uplinks.
    func defaultAsconfDestination() -> SCTPSocketAddress {
        var best = paths.primary.remoteAddress
        var bestLoad = Int.max
        var seen: [SCTPIPAddress] = []
        for path in paths where !seen.contains(path.remoteAddress.ip) {
            seen.append(path.remoteAddress.ip)
            let load = paths.count { $0.remoteAddress.ip == path.remoteAddress.ip && $0.localAddress != nil }
            if load < bestLoad { (best, bestLoad) = (path.remoteAddress, load) }
        }
        return best
    }

    private func sendNextAsconf(now: SCTPTime) {
        guard asconf.outstanding == nil, let request = asconf.queue.popFirst() else { return }
        let parameter: Parameter
        let source: SCTPSocketAddress
        let destination: SCTPSocketAddress
        switch request {
        case .add(let local, let remote):
            // The wildcard, sent from the new address itself: behind a NAT only the peer sees which public
            // address and port this address has, and the Add IP of the wildcard asks it to use the packet's source.
            parameter = .addIPAddress(
                correlationID: asconf.takeCorrelationID(), address: local.ip.isIPv4 ? .anyV4 : .anyV6)
            (source, destination) = (local, remote)
        case .delete(let local):
            guard let survivor = deletionSurvivor(excluding: local.ip) else {
                deferDeletion(request, now: now)
                return
            }
            // RFC 5061 §4.2.2: the wildcard asks the peer to keep only the address this packet comes from, which
            // is the survivor's address as the peer sees it (through its NAT). Naming `local` would not work
            // behind a NAT: the peer never saw that address. Nor may it leave from `local`, which would be kept.
            guard let survivorLocal = paths[survivor].localAddress else { return }
            parameter = .deleteIPAddress(
                correlationID: asconf.takeCorrelationID(), address: survivorLocal.ip.isIPv4 ? .anyV4 : .anyV6)
            (source, destination) = (survivorLocal, paths[survivor].remoteAddress)
        case .setPrimary(let local, let remote):
            parameter = .setPrimaryAddress(
                correlationID: asconf.takeCorrelationID(), address: local.ip.isIPv4 ? .anyV4 : .anyV6)
            (source, destination) = (local, remote)
        case .setPathPolicy(let local, let remote, let policy):
            parameter = PathPolicyParameter(correlationID: asconf.takeCorrelationID(), policy: policy).parameter
            (source, destination) = (local, remote)
        }
        let wildcard: SCTPIPAddress = source.ip.isIPv4 ? .anyV4 : .anyV6
        let chunk = ASCONFChunk(
            serial: asconf.nextSerial, addressParameter: .address(wildcard), parameters: [parameter])
        asconf.nextSerial = asconf.nextSerial.next
        let rto = paths.first(where: { $0.remoteAddress == destination })?.rto.rto ?? paths.primary.rto.rto
        asconf.outstanding = AsconfState.Outstanding(
            request: request, chunk: chunk, source: source, destination: destination, timeout: rto)
        transmitOutstandingAsconf(now: now)
    }

    /// The path a wildcard Delete IP for `ip` leaves on: one of ours with another local address, the primary if
    /// it is active, else any active one, else one just added by ASCONF and not yet confirmed (its ASCONF-ACK
    /// came back over it, so it works).
    func deletionSurvivor(excluding ip: SCTPIPAddress) -> PathID? {
        let candidates = paths.ids { path in
            guard let local = path.localAddress else { return false }
            return !local.ip.isWildcard && local.ip != ip
        }
        if candidates.contains(paths.primaryID), paths.primary.isActive { return paths.primaryID }
        return candidates.first { paths[$0].isActive } ?? candidates.first { paths[$0].state == .unconfirmed }
    }

    /// A deletion with no other path to send it from (the only path's address changed): an Add queued behind it
    /// goes first, and the deletion then leaves from the added address. With none, the deletion is dropped and
    /// the path is left to fail.
    private func deferDeletion(_ request: AsconfState.Request, now: SCTPTime) {
        guard case .delete(let local) = request else { return }
        let add = asconf.queue.firstIndex { queued in
            if case .add(let added, _) = queued { return added.ip != local.ip }
            return false
        }
        if let add {
            let first = asconf.queue.remove(at: add)
            asconf.queue.prepend(request)
            asconf.queue.prepend(first)
        } else {
            logger.warning(
                "cannot delete address: no other path to send the ASCONF from", metadata: ["local": "\(local)"])
        }
        sendNextAsconf(now: now)
    }

    private func transmitOutstandingAsconf(now: SCTPTime) {
        guard let outstanding = asconf.outstanding else { return }
        let packet = buildPacket([.asconf(outstanding.chunk)], tag: peerTag)
        if let i = paths.firstIndex(where: {
            $0.remoteAddress == outstanding.destination && $0.localAddress == outstanding.source
        }) {
            paths[i].recordSent(bytes: packet.readableBytes, dataBytes: 0, now: now)
        }
        output.datagrams.append(
            SCTPDatagram(
                source: outstanding.source, destination: outstanding.destination, payload: packet, owner: owner))
        timers.arm(.t4Asconf, at: now + outstanding.timeout)
    }

    /// RFC 5061 §5.1: on T-4 expiry the ASCONF is sent again unchanged (same serial, same addresses) with the
    /// timeout doubled; every expiry counts toward the association's error count like any retransmission.
    func handleT4Expiry(now: SCTPTime) {
        guard var outstanding = asconf.outstanding else { return }
        if countAssociationError(now: now) { return }
        if let i = paths.firstIndex(where: { $0.remoteAddress == outstanding.destination }),
            paths[i].localAddress == outstanding.source
        {
            paths[i].rto.backOff()
            reportStateChange(paths[i].recordError(), path: paths[i].id)
        }
        outstanding.retransmissions += 1
        outstanding.timeout = min(outstanding.timeout * 2, configuration.rtoMax)
        asconf.outstanding = outstanding
        transmitOutstandingAsconf(now: now)
    }

    func handleAsconfAck(_ ack: ASCONFAckChunk, now: SCTPTime) {
        guard let outstanding = asconf.outstanding, ack.serial == outstanding.chunk.serial else {
            output.drop(.unexpectedAsconfAck)
            return
        }
        timers.disarm(.t4Asconf)
        asconf.outstanding = nil
        errorCount = 0
        // RFC 5061 §5.3: a request without a response in the ASCONF-ACK succeeded.
        var causes: [ErrorCause]?
        for response in ack.parameters {
            if case .errorCauseIndication(let id, let reported) = response,
                outstanding.chunk.parameters.contains(
                    where: { $0.correlationID == id })
            {
                causes = reported
            }
        }
        if let causes {
            logger.warning(
                "peer refused address change", metadata: ["request": "\(outstanding.request)", "causes": "\(causes)"])
        } else {
            switch outstanding.request {
            case .add(let local, let remote):
                // The path toward `remote` now leaves from the new address, and is confirmed at once (unless this
                // side has its maximum of paths: counted, and the path stays unknown here).
                addPath(remote: remote, boundTo: local, now: now)
            case .delete(let local):
                deletionAcknowledged(local, keeping: outstanding.source, toward: outstanding.destination)
            case .setPrimary, .setPathPolicy:
                break
            }
        }
        sendNextAsconf(now: now)
    }

    /// The peer deleted every address of ours but the one the wildcard Delete IP came from (RFC 5061 §4.2.2). We
    /// drop our paths from `local` and every other path that leaves from a local address, except the survivor
    /// (`source` to `destination`); those with another local address than `local` are added again with ASCONF,
    /// each from its own address, so the peer learns them back through their NATs. Paths with no local address
    /// yet (learnt from INIT-ACK) never had a counterpart at the peer and stay.
    private func deletionAcknowledged(
        _ local: SCTPSocketAddress, keeping source: SCTPSocketAddress, toward destination: SCTPSocketAddress
    ) {
        var readd: [AsconfState.Request] = []
        for i in paths.indices.reversed() {
            let path = paths[i]
            guard let pathLocal = path.localAddress, !pathLocal.ip.isWildcard else { continue }
            if pathLocal == source && path.remoteAddress == destination { continue }
            if pathLocal.ip != local.ip { readd.append(.add(local: pathLocal, remote: path.remoteAddress)) }
            removePath(path.id)
        }
        for request in readd where !asconf.queue.contains(request) { asconf.queue.prepend(request) }
    }

    // MARK: - Receiver (RFC 5061 §5.2)

    /// An authenticated ASCONF (the caller has dropped unauthenticated ones, RFC 5061 §4.1.1). In sequence, its
    /// requests are applied and answered; the last one again gets the cached ASCONF-ACK again (§5.2 "V2"); any
    /// other serial number is discarded.
    func handleAsconf(
        _ chunk: ASCONFChunk, from source: SCTPSocketAddress, to local: SCTPSocketAddress, now: SCTPTime
    ) {
        guard state.isEstablishedOrLater, features.contains(.asconf) else {
            output.drop(.asconfNotNegotiated)
            return
        }
        if chunk.serial == asconf.peerSerial, let cached = asconf.cachedAck {
            // A retransmission: our ASCONF-ACK was lost. Answer where this copy came from.
            reply([.asconfAck(cached)], to: source, from: local, tag: peerTag)
            return
        }
        guard chunk.serial == asconf.peerSerial.next else {
            output.drop(.asconfOutOfSequence)
            return
        }
        var responses: [Parameter] = []
        var added: [PathID] = []
        for request in chunk.parameters {
            let result = apply(request, from: source, to: local, now: now, added: &added)
            if let result { responses.append(result) }
        }
        let ack = ASCONFAckChunk(serial: chunk.serial, parameters: responses)
        asconf.peerSerial = chunk.serial
        asconf.cachedAck = ack
        // The ASCONF-ACK goes to the address and port the ASCONF came from (RFC 6951 §5.4), from where it arrived.
        reply([.asconfAck(ack)], to: source, from: local, tag: peerTag)
        // New paths are announced and probed after the ASCONF-ACK has gone, so the peer hears the answer first.
        for path in added where paths.contains(path) { announceNewPath(path, now: now) }
    }

    /// Applies one request; returns its Success or Error Cause Indication.
    private func apply(
        _ request: Parameter, from source: SCTPSocketAddress, to local: SCTPSocketAddress, now: SCTPTime,
        added: inout [PathID]
    ) -> Parameter? {
        switch request {
        case .addIPAddress(let id, let address):
            // RFC 5061 §4.2.1: the wildcard stands for the packet's source address; behind a NAT that is the
            // NAT's public address and port, which is the only address we can reach the peer at. The new path
            // leaves from the address the ASCONF arrived at.
            let remote = address.isWildcard ? source : SCTPSocketAddress(ip: address, port: source.port)
            if !paths.contains(where: { $0.remoteAddress == remote }) {
                // RFC 5061 §5.2: a request the receiver has no resources for is answered with "Operation Refused
                // Due to Resource Shortage", and "the entire TLV that is refused is copied from the ASCONF-Request
                // into the error cause" (§4.3). A peer may hold `maxPathsPerAssociation` paths, no more.
                guard let path = addPath(remote: remote, boundTo: local, now: now, announce: false) else {
                    return .errorCauseIndication(
                        correlationID: id, causes: [.operationRefusedResourceShortage(Self.requestTLV(request))])
                }
                added.append(path)
            }
            return .successIndication(correlationID: id)
        case .deleteIPAddress(let id, let address) where address.isWildcard:
            // RFC 5061 §4.2.2: "If the address 0.0.0.0 or ::0 is provided, all addresses of the peer except the
            // source address of the packet MUST be deleted." Behind a NAT the source is the NAT's address and port
            // for the path the peer sent this on, the only name of that path we know, so this is how a peer
            // behind a NAT deletes an address. A source that is none of the peer's paths would leave none.
            guard let kept = paths.firstID(where: { $0.remoteAddress == source }) else {
                return .errorCauseIndication(
                    correlationID: id, causes: [.deleteLastRemainingIPAddress(Self.addressTLV(address))])
            }
            for doomed in paths.ids(where: { $0.remoteAddress != source }).reversed() { removePath(doomed) }
            paths.makePrimary(kept)
            return .successIndication(correlationID: id)
        case .deleteIPAddress(let id, let address):
            // RFC 5061 §5.3 F8 and F7: the source address of the ASCONF and the last address may not be deleted.
            if address == source.ip {
                return .errorCauseIndication(
                    correlationID: id, causes: [.deleteSourceIPAddress(Self.addressTLV(address))])
            }
            let doomed = paths.ids { $0.remoteAddress.ip == address }
            if doomed.isEmpty {
                // Not an address of the association: behind a NAT, a private address the peer never sent from.
                // Answering success would leave the path it meant in place without telling it.
                return .errorCauseIndication(
                    correlationID: id, causes: [.unresolvableAddress(Self.addressTLV(address))])
            }
            if doomed.count == paths.count {
                return .errorCauseIndication(
                    correlationID: id, causes: [.deleteLastRemainingIPAddress(Self.addressTLV(address))])
            }
            for path in doomed.reversed() { removePath(path) }
            return .successIndication(correlationID: id)
        case .setPrimaryAddress(let id, let address):
            let remote = address.isWildcard ? source : SCTPSocketAddress(ip: address, port: source.port)
            guard let path = paths.firstID(where: { $0.remoteAddress == remote }) else {
                return .errorCauseIndication(
                    correlationID: id, causes: [.unresolvableAddress(Self.addressTLV(address))])
            }
            paths.makePrimary(path)
            return .successIndication(correlationID: id)
        case .unknown(PathPolicyParameter.type, let value):
            // agg's Path Policy: the path is the one this packet came on, named by its source as for Set Primary
            // of the wildcard. A malformed one has no correlation ID to answer: it is dropped and counted.
            guard let request = PathPolicyParameter(value: value) else {
                output.drop(.malformedPathPolicy)
                return nil
            }
            guard let path = paths.firstID(where: { $0.remoteAddress == source }) else {
                return .errorCauseIndication(
                    correlationID: request.correlationID, causes: [.unresolvableAddress(Self.addressTLV(source.ip))])
            }
            setPeerPathPolicy(request.policy, path: path, now: now)
            return .successIndication(correlationID: request.correlationID)
        default:
            return nil
        }
    }

    /// An ASCONF request parameter as it is on the wire, for error causes that copy it.
    static func requestTLV(_ request: Parameter) -> ByteBuffer {
        var buffer = ByteBuffer()
        request.encode(into: &buffer)
        return buffer
    }

    static func addressTLV(_ ip: SCTPIPAddress) -> ByteBuffer {
        var buffer = ByteBuffer()
        Parameter.address(ip).encode(into: &buffer)
        return buffer
    }
}

extension Parameter {
    /// The Correlation ID of an ASCONF request or response; nil for other parameters.
    var correlationID: UInt32? {
        switch self {
        case .addIPAddress(let id, _), .deleteIPAddress(let id, _), .setPrimaryAddress(let id, _),
            .errorCauseIndication(let id, _), .successIndication(let id):
            return id
        case .unknown(PathPolicyParameter.type, let value):
            return value.getInteger(at: value.readerIndex, as: UInt32.self)
        default:
            return nil
        }
    }
}
