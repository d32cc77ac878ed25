/// The stream reconfiguration request and response parameters of RFC 6525 §4, carried in RE-CONFIG chunks.

/// Outgoing SSN Reset Request (RFC 6525 §4.1, type 13): the sender resets its outgoing streams.
public struct OutgoingSSNResetRequest: Hashable, Sendable {
    public var requestSequence: ReconfigRequestSequence
    /// The request this one answers, when it is sent in reply to an Incoming SSN Reset Request.
    public var responseSequence: ReconfigRequestSequence
    public var senderLastAssignedTSN: TSN
    /// The streams to reset; empty means all.
    public var streams: [StreamID]

    public init(
        requestSequence: ReconfigRequestSequence, responseSequence: ReconfigRequestSequence,
        senderLastAssignedTSN: TSN, streams: [StreamID]
    ) {
        self.requestSequence = requestSequence
        self.responseSequence = responseSequence
        self.senderLastAssignedTSN = senderLastAssignedTSN
        self.streams = streams
    }
}

/// Incoming SSN Reset Request (RFC 6525 §4.2, type 14): asks the peer to reset its outgoing streams.
public struct IncomingSSNResetRequest: Hashable, Sendable {
    public var requestSequence: ReconfigRequestSequence
    /// The streams to reset; empty means all.
    public var streams: [StreamID]

    public init(requestSequence: ReconfigRequestSequence, streams: [StreamID]) {
        self.requestSequence = requestSequence
        self.streams = streams
    }
}

/// SSN/TSN Reset Request (RFC 6525 §4.3, type 15).
public struct SSNTSNResetRequest: Hashable, Sendable {
    public var requestSequence: ReconfigRequestSequence

    public init(requestSequence: ReconfigRequestSequence) { self.requestSequence = requestSequence }
}

/// Add Outgoing Streams Request (RFC 6525 §4.5, type 17) or Add Incoming Streams Request (§4.6, type 18).
public struct AddStreamsRequest: Hashable, Sendable {
    public var requestSequence: ReconfigRequestSequence
    public var newStreams: UInt16

    public init(requestSequence: ReconfigRequestSequence, newStreams: UInt16) {
        self.requestSequence = requestSequence
        self.newStreams = newStreams
    }
}

/// Re-configuration Response (RFC 6525 §4.4, type 16).
public struct ReconfigurationResponse: Hashable, Sendable {
    /// The result codes of RFC 6525 §4.4; unknown values are kept as they are.
    public struct Result: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let successNothingToDo = Result(rawValue: 0)
        public static let successPerformed = Result(rawValue: 1)
        public static let denied = Result(rawValue: 2)
        public static let errorWrongSSN = Result(rawValue: 3)
        public static let errorRequestAlreadyInProgress = Result(rawValue: 4)
        public static let errorBadSequenceNumber = Result(rawValue: 5)
        public static let inProgress = Result(rawValue: 6)
    }

    public var responseSequence: ReconfigRequestSequence
    public var result: Result
    /// Sender's and receiver's next TSN, present together or not at all (answers to SSN/TSN Reset Requests).
    public var nextTSNs: (sender: TSN, receiver: TSN)?

    public init(
        responseSequence: ReconfigRequestSequence, result: Result, nextTSNs: (sender: TSN, receiver: TSN)? = nil
    ) {
        self.responseSequence = responseSequence
        self.result = result
        self.nextTSNs = nextTSNs
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.responseSequence == b.responseSequence && a.result == b.result
            && a.nextTSNs?.sender == b.nextTSNs?.sender && a.nextTSNs?.receiver == b.nextTSNs?.receiver
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(responseSequence)
        hasher.combine(result)
        hasher.combine(nextTSNs?.sender)
        hasher.combine(nextTSNs?.receiver)
    }
}
