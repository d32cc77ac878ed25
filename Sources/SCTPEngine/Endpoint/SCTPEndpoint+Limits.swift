/// What the endpoint's resource limits refused, for metrics.
extension SCTPEndpoint {
    /// Refusals at a resource limit since the endpoint started.
    public var limitRefusals: SCTPLimitRefusals { output.refusals }
}
