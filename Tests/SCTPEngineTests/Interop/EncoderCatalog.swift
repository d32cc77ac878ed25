import NIOCore
import SCTPEngine

/// SCTP packets built with the wire encoder, one or more of every chunk type with every parameter and error cause
/// the encoder knows, for checking our bytes against an independent decoder (tshark) and for seeding the fuzzer.
enum EncoderCatalog {
    /// A named packet: the name says what it is meant to exercise.
    struct Entry {
        var name: String
        var packet: SCTPPacket
        var bytes: ByteBuffer { packet.encode() }
    }

    static let sourcePort: UInt16 = 5000
    static let destinationPort: UInt16 = 5001
    static let tag = VerificationTag(0x1234_5678)

    static let v4a = SCTPIPAddress(v4: 192, 0, 2, 1)
    static let v4b = SCTPIPAddress(v4: 198, 51, 100, 7)
    static let v6a = SCTPIPAddress("2001:db8::1")!

    static func bytes(_ values: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: values) }
    static func text(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }
    static func pattern(_ count: Int, seed: UInt8 = 0) -> ByteBuffer {
        ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) })
    }

    static func packet(_ name: String, tag: VerificationTag = tag, _ chunks: [Chunk]) -> Entry {
        Entry(
            name: name,
            packet: SCTPPacket(
                header: CommonHeader(sourcePort: sourcePort, destinationPort: destinationPort, verificationTag: tag),
                chunks: chunks))
    }

    /// An address parameter as a whole TLV, as the causes that quote a parameter carry it.
    static func addressTLV(_ ip: SCTPIPAddress) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt16(ip.isIPv4 ? 5 : 6))
        buffer.writeInteger(UInt16(ip.isIPv4 ? 8 : 20))
        buffer.writeBytes(ip.bytes)
        return buffer
    }

    // MARK: - The packets

    static var entries: [Entry] {
        [
            packet("INIT with every INIT parameter", tag: VerificationTag(0), [.initiation(initWithEveryParameter)]),
            packet("INIT-ACK with cookie and unrecognized parameter", [.initiationAck(initAck)]),
            packet("COOKIE-ECHO", [.cookieEcho(CookieEchoChunk(cookie: pattern(37, seed: 3)))]),
            packet("COOKIE-ACK", [.cookieAck(CookieAckChunk())]),
            packet(
                "COOKIE-ECHO bundled with DATA", [.cookieEcho(CookieEchoChunk(cookie: pattern(64))), .data(data(1))]),
            packet("DATA, all flag combinations", dataFlagCombinations),
            packet(
                "DATA with 1 to 4 byte payloads (padding)", (1...4).map { .data(data(UInt32(10 + $0), length: $0)) }),
            packet(
                "SACK without blocks",
                [.sack(SackChunk(cumulativeTSNAck: TSN(99), advertisedReceiverWindowCredit: 65536))]),
            packet("SACK with gaps and duplicates", [.sack(sackWithGaps)]),
            packet("NR-SACK", [.nrSack(nrSack)]),
            packet("HEARTBEAT", [.heartbeat(HeartbeatChunk(info: pattern(40, seed: 9)))]),
            packet("HEARTBEAT-ACK", [.heartbeatAck(HeartbeatAckChunk(info: pattern(40, seed: 9)))]),
            packet("ABORT without causes", [.abort(AbortChunk())]),
            packet("ABORT, tag reflected, every cause", [.abort(AbortChunk(isTagReflected: true, causes: everyCause))]),
            packet("ERROR with every cause", [.error(ErrorChunk(causes: everyCause))]),
            packet("SHUTDOWN", [.shutdown(ShutdownChunk(cumulativeTSNAck: TSN(0xFFFF_FFF0)))]),
            packet("SHUTDOWN-ACK", [.shutdownAck(ShutdownAckChunk())]),
            packet("SHUTDOWN-COMPLETE", [.shutdownComplete(ShutdownCompleteChunk())]),
            packet(
                "SHUTDOWN-COMPLETE, tag reflected", [.shutdownComplete(ShutdownCompleteChunk(isTagReflected: true))]),
            packet("ECNE and CWR", [.ecne(ECNEChunk(lowestTSN: TSN(77))), .cwr(CWRChunk(lowestTSN: TSN(77)))]),
            packet("AUTH then ASCONF", [.auth(auth), .asconf(asconf)]),
            packet("AUTH then ASCONF-ACK", [.auth(auth), .asconfAck(asconfAck)]),
            packet("ASCONF with an IPv6 address parameter", [.asconf(asconfV6)]),
            packet("FORWARD-TSN", [.forwardTSN(forwardTSN)]),
            packet("FORWARD-TSN without streams", [.forwardTSN(ForwardTSNChunk(newCumulativeTSN: TSN(5)))]),
            packet("I-DATA, first and middle fragments", iData),
            packet("I-FORWARD-TSN", [.iForwardTSN(iForwardTSN)]),
            packet(
                "RE-CONFIG outgoing and incoming reset",
                [.reconfig(ReConfigChunk(parameters: [outgoingReset, incomingReset]))]),
            packet(
                "RE-CONFIG SSN/TSN reset",
                [
                    .reconfig(
                        ReConfigChunk(parameters: [
                            .ssnTSNResetRequest(SSNTSNResetRequest(requestSequence: ReconfigRequestSequence(9)))
                        ]))
                ]),
            packet(
                "RE-CONFIG responses",
                [
                    .reconfig(ReConfigChunk(parameters: [responseWithTSNs])),
                    .reconfig(ReConfigChunk(parameters: [responsePlain])),
                ]),
            packet("RE-CONFIG add streams", [.reconfig(ReConfigChunk(parameters: [addOutgoing, addIncoming]))]),
            packet("PAD then DATA", [.pad(PadChunk(paddingLength: 53)), .data(data(300))]),
            packet("unknown chunk types with each high-bit action", unknownChunks),
        ]
    }

    // MARK: - Chunk bodies

    static var initWithEveryParameter: InitChunk {
        InitChunk(
            initiateTag: VerificationTag(0xCAFE_F00D), advertisedReceiverWindowCredit: 131_072, outboundStreams: 10,
            inboundStreams: 65535, initialTSN: TSN(0xFFFF_FF00),
            parameters: [
                .address(v4a), .address(v6a), .cookiePreservative(30_000), .hostNameAddress(text("example.org\0")),
                .supportedAddressTypes([5, 6]), .ecnCapable, .zeroChecksumAcceptable(1),
                .random(pattern(32, seed: 1)), .chunkList([ASCONFChunk.type, ASCONFAckChunk.type]),
                .hmacAlgorithm([3, 1]), .padding(17),
                .supportedExtensions([
                    ForwardTSNChunk.type, AuthChunk.type, ASCONFChunk.type, ASCONFAckChunk.type, ReConfigChunk.type,
                    IDataChunk.type, IForwardTSNChunk.type, NRSackChunk.type, PadChunk.type,
                ]),
                .forwardTSNSupported, .adaptationLayerIndication(0x0102_0304),
                .unknown(type: 0xC00F, value: text("unknown, skip and report")),
            ])
    }

    static var initAck: InitAckChunk {
        var unrecognized = ByteBuffer()
        unrecognized.writeInteger(UInt16(0xC00F))
        unrecognized.writeInteger(UInt16(8))
        unrecognized.writeInteger(UInt32(0xDEAD_BEEF))
        return InitAckChunk(
            initiateTag: VerificationTag(0x0BAD_CAFE), advertisedReceiverWindowCredit: 1 << 20, outboundStreams: 65535,
            inboundStreams: 10, initialTSN: TSN(1),
            parameters: [
                .stateCookie(pattern(61, seed: 5)), .address(v4b), .unrecognizedParameter(unrecognized), .ecnCapable,
                .forwardTSNSupported, .supportedExtensions([ReConfigChunk.type]),
            ])
    }

    static func data(_ tsn: UInt32, length: Int = 100) -> DataChunk {
        DataChunk(
            tsn: TSN(tsn), streamID: StreamID(3), ssn: SSN(UInt16(truncatingIfNeeded: tsn)), ppid: PPID(51),
            userData: pattern(length, seed: UInt8(truncatingIfNeeded: tsn)))
    }

    static var dataFlagCombinations: [Chunk] {
        (0..<16).map { bits -> Chunk in
            .data(
                DataChunk(
                    tsn: TSN(UInt32(1000 + bits)), streamID: StreamID(UInt16(bits)), ssn: SSN(UInt16(bits)),
                    ppid: PPID(53), isUnordered: bits & 4 != 0, isBeginning: bits & 2 != 0, isEnding: bits & 1 != 0,
                    isImmediate: bits & 8 != 0, userData: pattern(8 + bits)))
        }
    }

    static var sackWithGaps: SackChunk {
        SackChunk(
            cumulativeTSNAck: TSN(1000), advertisedReceiverWindowCredit: 12_345,
            gapAckBlocks: [
                GapAckBlock(start: 2, end: 3), GapAckBlock(start: 5, end: 5), GapAckBlock(start: 9, end: 20),
            ],
            duplicateTSNs: [TSN(998), TSN(999), TSN(999)])
    }

    static var nrSack: NRSackChunk {
        NRSackChunk(
            cumulativeTSNAck: TSN(500), advertisedReceiverWindowCredit: 4096,
            gapAckBlocks: [GapAckBlock(start: 2, end: 4)],
            nrGapAckBlocks: [GapAckBlock(start: 2, end: 3), GapAckBlock(start: 7, end: 8)],
            duplicateTSNs: [TSN(450)])
    }

    static var everyCause: [ErrorCause] {
        var unrecognizedChunk = ByteBuffer()
        UnknownChunk(type: 0xEE, flags: 0x5A, value: text("quoted")).encode(into: &unrecognizedChunk)
        return [
            .invalidStreamIdentifier(StreamID(77)), .missingMandatoryParameter([7, 9]),
            .staleCookie(measureOfStaleness: 1_500_000), .outOfResource, .unresolvableAddress(addressTLV(v4b)),
            .unrecognizedChunkType(unrecognizedChunk), .invalidMandatoryParameter,
            .unrecognizedParameters(addressTLV(v6a)), .noUserData(TSN(4242)), .cookieReceivedWhileShuttingDown,
            .restartWithNewAddresses(addressTLV(v4a)), .userInitiatedAbort(text("bye")),
            .protocolViolation(text("chunk length too small")),
            .restartWithNewEncapsulationPort(currentPort: 9899, newPort: 9900),
            .deleteLastRemainingIPAddress(addressTLV(v4a)), .operationRefusedResourceShortage(addressTLV(v4a)),
            .deleteSourceIPAddress(addressTLV(v4a)), .illegalASCONFAck, .requestRefusedNoAuthorization(addressTLV(v4a)),
            .unsupportedHMACIdentifier(2), .unknown(code: 0x7777, value: text("?")),
        ]
    }

    static var auth: AuthChunk {
        AuthChunk(sharedKeyID: 0, hmacID: 1, hmac: pattern(20, seed: 11))
    }

    static var asconf: ASCONFChunk {
        ASCONFChunk(
            serial: ASCONFSerial(0x1000_0001), addressParameter: .address(v4a),
            parameters: [
                .addIPAddress(correlationID: 1, address: v4b), .deleteIPAddress(correlationID: 2, address: v4a),
                .setPrimaryAddress(correlationID: 3, address: v4b), .adaptationLayerIndication(0xA),
                .supportedExtensions([ASCONFChunk.type, ASCONFAckChunk.type]),
            ])
    }

    static var asconfV6: ASCONFChunk {
        ASCONFChunk(
            serial: ASCONFSerial(7), addressParameter: .address(v6a),
            parameters: [.addIPAddress(correlationID: 9, address: SCTPIPAddress("2001:db8::2")!)])
    }

    static var asconfAck: ASCONFAckChunk {
        ASCONFAckChunk(
            serial: ASCONFSerial(0x1000_0001),
            parameters: [
                .successIndication(correlationID: 1),
                .errorCauseIndication(correlationID: 2, causes: [.deleteLastRemainingIPAddress(addressTLV(v4a))]),
                .errorCauseIndication(correlationID: 3, causes: [.requestRefusedNoAuthorization(addressTLV(v4b))]),
            ])
    }

    static var forwardTSN: ForwardTSNChunk {
        ForwardTSNChunk(
            newCumulativeTSN: TSN(123_456),
            streams: [.init(streamID: StreamID(1), ssn: SSN(5)), .init(streamID: StreamID(2), ssn: SSN(65535))])
    }

    static var iData: [Chunk] {
        [
            .idata(
                IDataChunk(
                    tsn: TSN(70), streamID: StreamID(4), mid: MID(12), ppid: PPID(50), isEnding: false,
                    userData: pattern(33))),
            .idata(
                IDataChunk(
                    tsn: TSN(71), streamID: StreamID(4), mid: MID(12), fsn: 1, isUnordered: true, isBeginning: false,
                    isEnding: false, isImmediate: true, userData: pattern(32))),
        ]
    }

    static var iForwardTSN: IForwardTSNChunk {
        IForwardTSNChunk(
            newCumulativeTSN: TSN(88),
            entries: [
                .init(streamID: StreamID(1), isUnordered: false, mid: MID(4)),
                .init(streamID: StreamID(6), isUnordered: true, mid: MID(0xFFFF_FFFF)),
            ])
    }

    static var outgoingReset: Parameter {
        .outgoingSSNResetRequest(
            OutgoingSSNResetRequest(
                requestSequence: ReconfigRequestSequence(100), responseSequence: ReconfigRequestSequence(41),
                senderLastAssignedTSN: TSN(9999), streams: [StreamID(1), StreamID(2), StreamID(3)]))
    }

    static var incomingReset: Parameter {
        .incomingSSNResetRequest(IncomingSSNResetRequest(requestSequence: ReconfigRequestSequence(101), streams: []))
    }

    static var responseWithTSNs: Parameter {
        .reconfigurationResponse(
            ReconfigurationResponse(
                responseSequence: ReconfigRequestSequence(100), result: .successPerformed,
                nextTSNs: (sender: TSN(20_000), receiver: TSN(30_000))))
    }

    static var responsePlain: Parameter {
        .reconfigurationResponse(
            ReconfigurationResponse(responseSequence: ReconfigRequestSequence(101), result: .denied, nextTSNs: nil))
    }

    static var addOutgoing: Parameter {
        .addOutgoingStreamsRequest(AddStreamsRequest(requestSequence: ReconfigRequestSequence(102), newStreams: 16))
    }

    static var addIncoming: Parameter {
        .addIncomingStreamsRequest(AddStreamsRequest(requestSequence: ReconfigRequestSequence(103), newStreams: 8))
    }

    static var unknownChunks: [Chunk] {
        [0x3F, 0x7F, 0xBF, 0xFF].map { type -> Chunk in
            .unknown(UnknownChunk(type: type, flags: 0xA5, value: pattern(Int(type & 7) + 1)))
        }
    }
}
