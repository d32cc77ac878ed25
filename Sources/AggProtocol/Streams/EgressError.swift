/// Why an egress connection failed, as the OPEN-RESULT code to send and a line for the log; `refusal` names the
/// defence when one refused it (for the metric).
public struct EgressError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: OpenResultCode
    public var detail: String
    public var refusal: Refusal?

    public init(_ code: OpenResultCode, _ detail: String, refusal: Refusal? = nil) {
        self.code = code
        self.detail = detail
        self.refusal = refusal
    }

    public var description: String { "\(code): \(detail)" }
}
