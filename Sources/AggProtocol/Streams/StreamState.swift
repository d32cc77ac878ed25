import NIOCore

/// The state of one stream on one side of the association: which messages may be sent and received, the
/// flow-control windows, and when the stream id is free again. Pure: every transition returns what the caller
/// must do; nothing is sent or read here.
///
/// Release rule (see docs/PROTOCOL.md, "Stream reuse"): the server frees a stream first, at the moment it sends a
/// terminal message — a failed OPEN-RESULT, RESET, or CLOSED (sent once it has both sent and received FIN) — and
/// sends nothing more for that connection. The client frees the stream only when it receives one of those
/// terminals. Hence the client never receives a message of an old connection on a reused stream, and every
/// message of the old connection that the server receives precedes the new OPEN (streams are ordered) and finds
/// the stream idle, where it is ignored.
public struct StreamState: Sendable {
    public enum Role: Sendable { case client, server }

    public enum Phase: Equatable, Sendable {
        /// Free: the id may be (re)used. The client sends OPEN from here; the server accepts OPEN here.
        case idle
        /// OPEN sent (client) or received (server), OPEN-RESULT not yet. The client may already have sent FIN; the
        /// server may already have received it.
        case opening(finSent: Bool, finReceived: Bool)
        case open
        /// We sent FIN; the peer may still send.
        case halfClosedLocal
        /// The peer sent FIN; we may still send.
        case halfClosedRemote
        /// Client: both directions are done or we sent RESET; waiting for the server's terminal message.
        /// Server: both FINs are exchanged; the caller must send CLOSED next.
        case closed
    }

    public let role: Role
    public private(set) var phase: Phase = .idle
    /// Credit for our DATA.
    public private(set) var sendWindow = FlowWindow(credit: 0)
    /// Credit we granted for the peer's DATA.
    public private(set) var receiveWindow: ReceiveWindow

    /// Credit for our DATA at the start of each connection. The client's comes from HELLO's stream credit; the
    /// server's from each OPEN.
    public let initialSendCredit: UInt32

    /// `receiveCredit` is the window this side grants the peer for each connection (the server's HELLO stream
    /// credit; on the client, OPEN's credit replaces it). `initialSendCredit` matters to the client only.
    public init(role: Role, receiveCredit: UInt32, initialSendCredit: UInt32 = 0) {
        self.role = role
        self.receiveWindow = ReceiveWindow(capacity: receiveCredit)
        self.initialSendCredit = initialSendCredit
    }

    public var isFree: Bool { phase == .idle }

    /// Whether we may still send DATA (ignoring credit).
    public var maySendData: Bool {
        switch (role, phase) {
        case (.client, .opening(finSent: false, _)), (_, .open), (_, .halfClosedRemote): return true
        case (.client, .opening), (.server, .opening), (_, .idle), (_, .halfClosedLocal), (_, .closed): return false
        }
    }

    /// Whether the peer may still send DATA, so consumed bytes should be credited back.
    public var mayReceiveData: Bool {
        switch (role, phase) {
        case (.client, .open), (.client, .halfClosedLocal): return true
        case (.server, .opening(_, finReceived: false)), (.server, .open), (.server, .halfClosedLocal): return true
        case (_, .idle), (_, .opening), (_, .halfClosedRemote), (_, .closed): return false
        }
    }

    // MARK: - Sending

    /// Validates and applies a message we are about to send. On a thrown error nothing changed and the message
    /// must not be sent.
    public mutating func send(_ message: StreamMessage) throws(StreamStateError) -> StreamSendResult {
        switch (role, message) {
        case (.client, .open(_, let credit)):
            guard phase == .idle else { throw .sendNotAllowed(message.kind, in: phase) }
            receiveWindow = ReceiveWindow(capacity: credit)
            sendWindow = FlowWindow(credit: initialSendCredit)
            phase = .opening(finSent: false, finReceived: false)
            return .sent
        case (.server, .openResult(let code, _)):
            guard case .opening(_, let finReceived) = phase else { throw .sendNotAllowed(message.kind, in: phase) }
            guard code.isSuccess else {
                phase = .idle
                return .released
            }
            phase = finReceived ? .halfClosedRemote : .open
            return .sent
        case (_, .data(let bytes)):
            guard maySendData else { throw .sendNotAllowed(message.kind, in: phase) }
            guard bytes.readableBytes <= AggLimits.maxDataPayload else { throw .dataTooLarge(bytes.readableBytes) }
            do { try sendWindow.consume(bytes.readableBytes) } catch { throw .flowControl(error) }
            return .sent
        case (_, .fin):
            return try sendFin()
        case (_, .reset):
            return try sendReset()
        case (_, .windowUpdate):
            guard mayReceiveData else { throw .sendNotAllowed(message.kind, in: phase) }
            return .sent
        case (.server, .closed):
            guard phase == .closed else { throw .sendNotAllowed(message.kind, in: phase) }
            phase = .idle
            return .released
        case (.client, .openResult), (.client, .closed), (.server, .open):
            throw .sendNotAllowed(message.kind, in: phase)
        }
    }

    private mutating func sendFin() throws(StreamStateError) -> StreamSendResult {
        switch (role, phase) {
        case (.client, .opening(finSent: false, let finReceived)):
            phase = .opening(finSent: true, finReceived: finReceived)
        case (_, .open):
            phase = .halfClosedLocal
        case (.client, .halfClosedRemote):
            phase = .closed
        case (.server, .halfClosedRemote):
            phase = .closed
            return .mustSendClosed
        case (.client, .opening), (.server, .opening), (_, .idle), (_, .halfClosedLocal), (_, .closed):
            throw .sendNotAllowed(.fin, in: phase)
        }
        return .sent
    }

    private mutating func sendReset() throws(StreamStateError) -> StreamSendResult {
        switch (role, phase) {
        case (_, .idle), (.client, .closed):
            throw .sendNotAllowed(.reset, in: phase)
        case (.client, _):
            phase = .closed
            return .sent
        case (.server, _):
            phase = .idle
            return .released
        }
    }

    // MARK: - Receiving

    /// Applies a message from the peer and says what to do with it. A thrown error is the peer's fault: answer
    /// with RESET (`StreamStateError.resetReason`), or close the association for `.openOnBusyStream`.
    public mutating func receive(_ message: StreamMessage) throws(StreamStateError) -> StreamReceiveAction {
        switch role {
        case .client: return try clientReceive(message)
        case .server: return try serverReceive(message)
        }
    }

    private mutating func clientReceive(_ message: StreamMessage) throws(StreamStateError) -> StreamReceiveAction {
        let violation = StreamStateError.receiveNotAllowed(message.kind, in: phase)
        switch (phase, message) {
        // The server sends nothing after its terminal, so nothing may arrive on a free stream.
        case (.idle, _):
            throw violation
        // Waiting for the terminal: everything else is the rest of a connection we gave up on.
        case (.closed, .closed), (.closed, .reset):
            phase = .idle
            return .released
        case (.closed, .openResult(let code, _)) where !code.isSuccess:
            phase = .idle
            return .released
        case (.closed, .openResult), (.closed, .data), (.closed, .fin), (.closed, .windowUpdate):
            return .ignored
        case (.opening(let finSent, _), .openResult(let code, let text)):
            guard code.isSuccess else {
                phase = .idle
                return .openFailed(code, text: text)
            }
            phase = finSent ? .halfClosedLocal : .open
            return .opened
        case (.open, .data(let bytes)), (.halfClosedLocal, .data(let bytes)):
            return try receiveData(bytes)
        case (.open, .fin):
            phase = .halfClosedRemote
            return .remoteFinished
        case (.halfClosedLocal, .fin):
            phase = .closed
            return .remoteFinished
        case (.open, .windowUpdate(let credit)), (.halfClosedRemote, .windowUpdate(let credit)):
            return try grant(credit)
        case (.halfClosedLocal, .windowUpdate):
            return .ignored  // Credit for a direction we already finished.
        case (.opening, .reset), (.open, .reset), (.halfClosedLocal, .reset), (.halfClosedRemote, .reset):
            guard case .reset(let reason, let text) = message else { throw violation }
            phase = .idle
            return .resetByPeer(reason, text: text, mustAnswer: false)
        case (.opening, _), (.open, _), (.halfClosedLocal, _), (.halfClosedRemote, _), (.closed, _):
            throw violation
        }
    }

    private mutating func serverReceive(_ message: StreamMessage) throws(StreamStateError) -> StreamReceiveAction {
        let violation = StreamStateError.receiveNotAllowed(message.kind, in: phase)
        switch (phase, message) {
        case (.idle, .open(let target, let credit)):
            sendWindow = FlowWindow(credit: credit)
            receiveWindow = ReceiveWindow(capacity: UInt32(receiveWindow.capacity))
            phase = .opening(finSent: false, finReceived: false)
            return .open(target)
        case (_, .open):
            throw .openOnBusyStream
        // Messages the client sent before it learnt we freed the stream.
        case (.idle, _):
            return .ignored
        case (.opening(_, finReceived: false), .data(let bytes)), (.open, .data(let bytes)),
            (.halfClosedLocal, .data(let bytes)):
            return try receiveData(bytes)
        case (.opening(let finSent, finReceived: false), .fin):
            phase = .opening(finSent: finSent, finReceived: true)
            return .remoteFinished
        case (.open, .fin):
            phase = .halfClosedRemote
            return .remoteFinished
        case (.halfClosedLocal, .fin):
            phase = .closed
            return .remoteFinishedMustSendClosed
        case (.open, .windowUpdate(let credit)), (.halfClosedRemote, .windowUpdate(let credit)):
            return try grant(credit)
        case (.halfClosedLocal, .windowUpdate):
            return .ignored
        case (.opening, .reset(let reason, let text)), (.open, .reset(let reason, let text)),
            (.halfClosedLocal, .reset(let reason, let text)), (.halfClosedRemote, .reset(let reason, let text)):
            phase = .idle
            return .resetByPeer(reason, text: text, mustAnswer: true)
        case (.opening, _), (.open, _), (.halfClosedLocal, _), (.halfClosedRemote, _), (.closed, _):
            throw violation
        }
    }

    private mutating func receiveData(_ bytes: ByteBuffer) throws(StreamStateError) -> StreamReceiveAction {
        do { try receiveWindow.receive(bytes.readableBytes) } catch { throw .flowControl(error) }
        return .deliver(bytes)
    }

    private mutating func grant(_ credit: UInt32) throws(StreamStateError) -> StreamReceiveAction {
        do { try sendWindow.grant(credit) } catch { throw .flowControl(error) }
        return .credit(credit)
    }

    // MARK: - Local consumption

    /// Records that the local TCP socket accepted `bytes` of received DATA. Returns the WINDOW-UPDATE to send, if
    /// one is due; none once the peer has finished sending.
    public mutating func consumed(_ bytes: Int) -> StreamMessage? {
        let increment = receiveWindow.consume(bytes)
        guard let increment, mayReceiveData else { return nil }
        return .windowUpdate(credit: increment)
    }
}

/// What the caller does after `StreamState.send` accepted a message.
public enum StreamSendResult: Equatable, Sendable {
    /// Send it; the stream stays in use.
    case sent
    /// Send it; the stream id is free from now on (a server terminal).
    case released
    /// Send it, then send CLOSED (the server just finished both directions).
    case mustSendClosed
}

/// What the caller does with a message `StreamState.receive` accepted.
public enum StreamReceiveAction: Equatable, Sendable {
    /// Server: connect to the target, then send OPEN-RESULT.
    case open(StreamTarget)
    /// Client: the target accepted; the stream is open.
    case opened
    /// Client: the server could not connect; the stream is free again.
    case openFailed(OpenResultCode, text: String?)
    /// Write these bytes to the local TCP socket, then call `consumed`.
    case deliver(ByteBuffer)
    /// Shut down the local TCP socket's output.
    case remoteFinished
    /// Server: shut down the output and send CLOSED; the stream is then free.
    case remoteFinishedMustSendClosed
    /// More credit for our DATA: resume reading the local socket.
    case credit(UInt32)
    /// Abort the local TCP connection. `mustAnswer`: the server replies with RESET (which frees the stream on the
    /// client); the stream is free on this side.
    case resetByPeer(ResetReason, text: String?, mustAnswer: Bool)
    /// Client: the server's terminal arrived; the stream id is free.
    case released
    /// A late message of a connection this side already finished: drop it.
    case ignored
}

/// A message not allowed by the stream's state, or a broken flow-control rule.
public enum StreamStateError: Error, Equatable, Sendable, CustomStringConvertible {
    case sendNotAllowed(AggMessageKind, in: StreamState.Phase)
    case receiveNotAllowed(AggMessageKind, in: StreamState.Phase)
    case flowControl(FlowControlError)
    case dataTooLarge(Int)
    /// The client sent OPEN on a stream the server has not freed: the client broke the reuse rule, so stream
    /// boundaries can no longer be trusted. Close the association.
    case openOnBusyStream

    /// The RESET reason to answer a received violation with.
    public var resetReason: ResetReason {
        switch self {
        case .flowControl, .dataTooLarge: return .flowControlError
        case .sendNotAllowed, .receiveNotAllowed, .openOnBusyStream: return .protocolError
        }
    }

    public var description: String {
        switch self {
        case .sendNotAllowed(let kind, in: let phase): return "may not send \(kind) in \(phase)"
        case .receiveNotAllowed(let kind, in: let phase): return "\(kind) not allowed in \(phase)"
        case .flowControl(let error): return "flow control: \(error)"
        case .dataTooLarge(let size): return "DATA of \(size) bytes exceeds \(AggLimits.maxDataPayload)"
        case .openOnBusyStream: return "OPEN on a stream still in use"
        }
    }
}
