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

    /// The peer address an ASCONF goes to when the caller names none: another address of the peer than the
    /// primary's, so the new local address gets a path of its own; else the primary.
    func defaultAsconfDestination() -> SCTPSocketAddress {
        let primary = paths[primaryPathIndex].remoteAddress
        return paths.first(where: { $0.remoteAddress.ip != primary.ip })?.remoteAddress ?? primary
    }

    private func sendNextAsconf(now: SCTPTime) {
        guard asconf.outstanding == nil, let request = asconf.queue.popFirst() else { return }
        let correlationID = asconf.takeCorrelationID()
        let parameter: Parameter
        let source: SCTPSocketAddress
        let destination: SCTPSocketAddress
        switch request {
        case .add(let local, let remote):
            // The wildcard, sent from the new address itself: behind a NAT only the peer sees which public
            // address and port this address has, and the Add IP of the wildcard asks it to use the packet's source.
            parameter = .addIPAddress(correlationID: correlationID, address: local.ip.isIPv4 ? .anyV4 : .anyV6)
            (source, destination) = (local, remote)
        case .delete(let local):
            parameter = .deleteIPAddress(correlationID: correlationID, address: local.ip)
            // RFC 5061 §5.1: the request must not leave from the address being deleted.
            let i =
                paths.firstIndex(where: { $0.isActive && $0.localAddress != nil && $0.localAddress!.ip != local.ip })
                ?? sendPathIndex
            destination = paths[i].remoteAddress
            source = paths[i].localAddress ?? paths[primaryPathIndex].localAddress ?? local
        case .setPrimary(let local, let remote):
            parameter = .setPrimaryAddress(correlationID: correlationID, address: local.ip.isIPv4 ? .anyV4 : .anyV6)
            (source, destination) = (local, remote)
        }
        let wildcard: SCTPIPAddress = source.ip.isIPv4 ? .anyV4 : .anyV6
        let chunk = ASCONFChunk(serial: asconf.nextSerial, addressParameter: .address(wildcard), parameters: [parameter])
        asconf.nextSerial = asconf.nextSerial.next
        let rto = paths.first(where: { $0.remoteAddress == destination })?.rto.rto ?? paths[primaryPathIndex].rto.rto
        asconf.outstanding = AsconfState.Outstanding(
            request: request, chunk: chunk, source: source, destination: destination, timeout: rto)
        transmitOutstandingAsconf(now: now)
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
            SCTPDatagram(source: outstanding.source, destination: outstanding.destination, payload: packet))
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
            reportStateChange(paths[i].recordError(), pathIndex: i)
        }
        outstanding.retransmissions += 1
        outstanding.timeout = min(outstanding.timeout * 2, configuration.rtoMax)
        asconf.outstanding = outstanding
        transmitOutstandingAsconf(now: now)
    }

    func handleAsconfAck(_ ack: ASCONFAckChunk, now: SCTPTime) {
        guard let outstanding = asconf.outstanding, ack.serial == outstanding.chunk.serial else {
            output.drop("unexpected ASCONF-ACK")
            return
        }
        timers.disarm(.t4Asconf)
        asconf.outstanding = nil
        errorCount = 0
        // RFC 5061 §5.3: a request without a response in the ASCONF-ACK succeeded.
        var causes: [ErrorCause]?
        for response in ack.parameters {
            if case .errorCauseIndication(let id, let reported) = response, outstanding.chunk.parameters.contains(
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
                // The path toward `remote` now leaves from the new address, and is confirmed at once.
                _ = addPath(remote: remote, boundTo: local, now: now)
            case .delete(let local):
                while let i = paths.firstIndex(where: { $0.localAddress?.ip == local.ip }), paths.count > 1 {
                    removePath(at: i)
                }
            case .setPrimary:
                break
            }
        }
        sendNextAsconf(now: now)
    }

    // MARK: - Receiver (RFC 5061 §5.2)

    /// An authenticated ASCONF (the caller has dropped unauthenticated ones, RFC 5061 §4.1.1). In sequence, its
    /// requests are applied and answered; the last one again gets the cached ASCONF-ACK again (§5.2 "V2"); any
    /// other serial number is discarded.
    func handleAsconf(
        _ chunk: ASCONFChunk, from source: SCTPSocketAddress, to local: SCTPSocketAddress, now: SCTPTime
    ) {
        guard state.isEstablishedOrLater, features.contains(.asconf) else {
            output.drop("ASCONF not negotiated")
            return
        }
        if chunk.serial == asconf.peerSerial, let cached = asconf.cachedAck {
            // A retransmission: our ASCONF-ACK was lost. Answer where this copy came from.
            reply([.asconfAck(cached)], to: source, from: local, tag: peerTag)
            return
        }
        guard chunk.serial == asconf.peerSerial.next else {
            output.drop("ASCONF out of sequence")
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
        for pathID in added {
            if let i = paths.firstIndex(where: { $0.id == pathID }) { announceNewPath(i, now: now) }
        }
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
                let i = addPath(remote: remote, boundTo: local, now: now, announce: false)
                added.append(paths[i].id)
            }
            return .successIndication(correlationID: id)
        case .deleteIPAddress(let id, let address):
            let ip = address.isWildcard ? source.ip : address
            // RFC 5061 §5.2: the source address of the ASCONF and the last address may not be deleted.
            if ip == source.ip {
                return .errorCauseIndication(
                    correlationID: id, causes: [.deleteSourceIPAddress(Self.addressTLV(address))])
            }
            let doomed = paths.indices.filter { paths[$0].remoteAddress.ip == ip }
            if doomed.count == paths.count {
                return .errorCauseIndication(
                    correlationID: id, causes: [.deleteLastRemainingIPAddress(Self.addressTLV(address))])
            }
            for i in doomed.reversed() { removePath(at: i) }
            return .successIndication(correlationID: id)
        case .setPrimaryAddress(let id, let address):
            let remote = address.isWildcard ? source : SCTPSocketAddress(ip: address, port: source.port)
            guard let i = paths.firstIndex(where: { $0.remoteAddress == remote }) else {
                return .errorCauseIndication(
                    correlationID: id, causes: [.unresolvableAddress(Self.addressTLV(address))])
            }
            primaryPathIndex = i
            return .successIndication(correlationID: id)
        default:
            return nil
        }
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
        default:
            return nil
        }
    }
}
