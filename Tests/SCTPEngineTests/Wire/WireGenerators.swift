import NIOCore

@testable import SCTPEngine

/// Seeded random values of every wire type, for the round-trip property tests.
struct WireGenerator {
    var rng: SCTPRandom

    init(seed: UInt64) { rng = SCTPRandom(seed: seed) }

    mutating func u8() -> UInt8 { UInt8.random(in: .min ... .max, using: &rng) }
    mutating func u16() -> UInt16 { UInt16.random(in: .min ... .max, using: &rng) }
    mutating func u32() -> UInt32 { UInt32.random(in: .min ... .max, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    mutating func bytes(_ range: ClosedRange<Int> = 0...40) -> ByteBuffer {
        ByteBuffer(bytes: rng.bytes(int(range)))
    }

    mutating func list<T>(_ range: ClosedRange<Int> = 0...6, _ make: (inout WireGenerator) -> T) -> [T] {
        (0..<int(range)).map { _ in make(&self) }
    }

    mutating func ipv4() -> SCTPIPAddress { int(0...4) == 0 ? .anyV4 : .v4(u32()) }
    mutating func ipv6() -> SCTPIPAddress {
        int(0...4) == 0 ? .anyV6 : .v6(UInt64(u32()) << 32 | UInt64(u32()), UInt64(u32()) << 32 | UInt64(u32()))
    }
    mutating func ip() -> SCTPIPAddress { bool() ? ipv4() : ipv6() }

    // MARK: - Error causes

    static let errorCauseKinds = 21

    mutating func errorCause(_ kind: Int) -> ErrorCause {
        switch kind {
        case 0: return .invalidStreamIdentifier(StreamID(u16()))
        case 1: return .missingMandatoryParameter(list { $0.u16() })
        case 2: return .staleCookie(measureOfStaleness: u32())
        case 3: return .outOfResource
        case 4: return .unresolvableAddress(bytes())
        case 5: return .unrecognizedChunkType(bytes())
        case 6: return .invalidMandatoryParameter
        case 7: return .unrecognizedParameters(bytes())
        case 8: return .noUserData(TSN(u32()))
        case 9: return .cookieReceivedWhileShuttingDown
        case 10: return .restartWithNewAddresses(bytes())
        case 11: return .userInitiatedAbort(bytes())
        case 12: return .protocolViolation(bytes())
        case 13: return .restartWithNewEncapsulationPort(currentPort: u16(), newPort: u16())
        case 14: return .deleteLastRemainingIPAddress(bytes())
        case 15: return .operationRefusedResourceShortage(bytes())
        case 16: return .deleteSourceIPAddress(bytes())
        case 17: return .illegalASCONFAck
        case 18: return .requestRefusedNoAuthorization(bytes())
        case 19: return .unsupportedHMACIdentifier(u16())
        default:
            let known: Set<UInt16> = [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0x105,
            ]
            var code = u16()
            while known.contains(code) { code = u16() }
            return .unknown(code: code, value: bytes())
        }
    }

    mutating func errorCause() -> ErrorCause { errorCause(int(0...Self.errorCauseKinds - 1)) }

    // MARK: - Parameters

    static let parameterKinds = 30

    mutating func requestSequence() -> ReconfigRequestSequence { ReconfigRequestSequence(u32()) }

    mutating func parameter(_ kind: Int) -> Parameter {
        switch kind {
        case 0: return .heartbeatInfo(bytes())
        case 1: return .ipv4Address(ipv4())
        case 2: return .ipv6Address(ipv6())
        case 3: return .stateCookie(bytes(0...300))
        case 4: return .unrecognizedParameter(bytes())
        case 5: return .cookiePreservative(u32())
        case 6: return .hostNameAddress(bytes())
        case 7: return .supportedAddressTypes(list { $0.u16() })
        case 8:
            return .outgoingSSNResetRequest(
                OutgoingSSNResetRequest(
                    requestSequence: requestSequence(), responseSequence: requestSequence(),
                    senderLastAssignedTSN: TSN(u32()), streams: list { StreamID($0.u16()) }))
        case 9:
            return .incomingSSNResetRequest(
                IncomingSSNResetRequest(requestSequence: requestSequence(), streams: list { StreamID($0.u16()) }))
        case 10: return .ssnTSNResetRequest(SSNTSNResetRequest(requestSequence: requestSequence()))
        case 11:
            let next: (sender: TSN, receiver: TSN)? = bool() ? (TSN(u32()), TSN(u32())) : nil
            return .reconfigurationResponse(
                ReconfigurationResponse(
                    responseSequence: requestSequence(),
                    result: ReconfigurationResponse.Result(rawValue: u32() % 8), nextTSNs: next))
        case 12:
            return .addOutgoingStreamsRequest(AddStreamsRequest(requestSequence: requestSequence(), newStreams: u16()))
        case 13:
            return .addIncomingStreamsRequest(AddStreamsRequest(requestSequence: requestSequence(), newStreams: u16()))
        case 14: return .ecnCapable
        case 15: return .zeroChecksumAcceptable(u32())
        case 16: return .random(bytes(0...64))
        case 17: return .chunkList(list(0...9) { $0.u8() })
        case 18: return .hmacAlgorithm(list { $0.u16() })
        case 19: return .padding(int(0...50))
        case 20: return .supportedExtensions(list(0...9) { $0.u8() })
        case 21: return .forwardTSNSupported
        case 22: return .addIPAddress(correlationID: u32(), address: ip())
        case 23: return .deleteIPAddress(correlationID: u32(), address: ip())
        case 24: return .errorCauseIndication(correlationID: u32(), causes: list(0...4) { $0.errorCause() })
        case 25: return .setPrimaryAddress(correlationID: u32(), address: ip())
        case 26: return .successIndication(correlationID: u32())
        case 27: return .adaptationLayerIndication(u32())
        case 28: return .unknown(type: 0x4000 | (u16() & 0x0FFF) | 0x0F00, value: bytes())
        default: return .unknown(type: 0xE000 | (u16() & 0x0FFF), value: bytes())
        }
    }

    mutating func parameter() -> Parameter { parameter(int(0...Self.parameterKinds - 1)) }

    // MARK: - Chunks

    static let chunkKinds = 25

    mutating func blocks() -> [GapAckBlock] { list(0...8) { GapAckBlock(start: $0.u16(), end: $0.u16()) } }

    mutating func chunk(_ kind: Int) -> Chunk {
        switch kind {
        case 0:
            return .data(
                DataChunk(
                    tsn: TSN(u32()), streamID: StreamID(u16()), ssn: SSN(u16()), ppid: PPID(u32()),
                    isUnordered: bool(), isBeginning: bool(), isEnding: bool(), isImmediate: bool(),
                    userData: bytes(0...200)))
        case 1:
            return .initiation(
                InitChunk(
                    initiateTag: VerificationTag(u32()), advertisedReceiverWindowCredit: u32(),
                    outboundStreams: u16(), inboundStreams: u16(), initialTSN: TSN(u32()),
                    parameters: list { $0.parameter() }))
        case 2:
            return .initiationAck(
                InitAckChunk(
                    initiateTag: VerificationTag(u32()), advertisedReceiverWindowCredit: u32(),
                    outboundStreams: u16(), inboundStreams: u16(), initialTSN: TSN(u32()),
                    parameters: list { $0.parameter() }))
        case 3:
            return .sack(
                SackChunk(
                    cumulativeTSNAck: TSN(u32()), advertisedReceiverWindowCredit: u32(),
                    gapAckBlocks: blocks(), duplicateTSNs: list { TSN($0.u32()) }))
        case 4: return .heartbeat(HeartbeatChunk(info: bytes()))
        case 5: return .heartbeatAck(HeartbeatAckChunk(info: bytes()))
        case 6: return .abort(AbortChunk(isTagReflected: bool(), causes: list(0...4) { $0.errorCause() }))
        case 7: return .shutdown(ShutdownChunk(cumulativeTSNAck: TSN(u32())))
        case 8: return .shutdownAck(ShutdownAckChunk())
        case 9: return .error(ErrorChunk(causes: list(0...4) { $0.errorCause() }))
        case 10: return .cookieEcho(CookieEchoChunk(cookie: bytes(0...300)))
        case 11: return .cookieAck(CookieAckChunk())
        case 12: return .ecne(ECNEChunk(lowestTSN: TSN(u32())))
        case 13: return .cwr(CWRChunk(lowestTSN: TSN(u32())))
        case 14: return .shutdownComplete(ShutdownCompleteChunk(isTagReflected: bool()))
        case 15: return .auth(AuthChunk(sharedKeyID: u16(), hmacID: u16(), hmac: bytes(0...64)))
        case 16:
            return .nrSack(
                NRSackChunk(
                    cumulativeTSNAck: TSN(u32()), advertisedReceiverWindowCredit: u32(),
                    gapAckBlocks: blocks(), nrGapAckBlocks: blocks(), duplicateTSNs: list { TSN($0.u32()) },
                    isAllNonRenegable: bool()))
        case 17:
            return .idata(
                IDataChunk(
                    tsn: TSN(u32()), streamID: StreamID(u16()), mid: MID(u32()), ppid: PPID(u32()),
                    fsn: u32(), isUnordered: bool(), isBeginning: bool(), isEnding: bool(), isImmediate: bool(),
                    userData: bytes(0...200)))
        case 18: return .asconfAck(ASCONFAckChunk(serial: ASCONFSerial(u32()), parameters: list { $0.parameter() }))
        case 19: return .reconfig(ReConfigChunk(parameters: list(0...3) { $0.parameter() }))
        case 20: return .pad(PadChunk(paddingLength: int(0...100)))
        case 21:
            return .forwardTSN(
                ForwardTSNChunk(
                    newCumulativeTSN: TSN(u32()),
                    streams: list { ForwardTSNChunk.Stream(streamID: StreamID($0.u16()), ssn: SSN($0.u16())) }))
        case 22:
            return .asconf(
                ASCONFChunk(
                    serial: ASCONFSerial(u32()), addressParameter: .address(ip()),
                    parameters: list { $0.parameter() }))
        case 23:
            return .iForwardTSN(
                IForwardTSNChunk(
                    newCumulativeTSN: TSN(u32()),
                    entries: list {
                        IForwardTSNChunk.Entry(streamID: StreamID($0.u16()), isUnordered: $0.bool(), mid: MID($0.u32()))
                    }))
        default:
            let known: Set<UInt8> = [
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 64, 128, 130, 132, 192,
                193, 194,
            ]
            var type = u8()
            while known.contains(type) { type = u8() }
            return .unknown(UnknownChunk(type: type, flags: u8(), value: bytes()))
        }
    }

    mutating func chunk() -> Chunk { chunk(int(0...Self.chunkKinds - 1)) }

    mutating func header() -> CommonHeader {
        CommonHeader(sourcePort: u16(), destinationPort: u16(), verificationTag: VerificationTag(u32()))
    }
}
