// The layers below Proxy, re-exported: every file of Proxy, and every client of it (the daemons, sctpcat, the
// tests), sees them through `import Proxy` while the service glue is being rewritten (issue 13). Files may import
// them directly instead; once they all do, these lines go.
@_exported import AggOperations
@_exported import AggProtocol
@_exported import AggTransport
@_exported import AggEgress
@_exported import AggIngress
@_exported import AggConfig
@_exported import AggObservability
import SCTPEngine
