import AggEgress
import AggIngress
import AggProtocol
import NIOCore
import SCTPEngine

/// A host (name or IP literal, IPv6 optionally in brackets) and a port, as given on a command line.
public struct HostAndPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses "host:port", "[v6]:port", or, when `defaultPort` is given, a bare host or bracketed IPv6.
    public init?(_ text: String, defaultPort: UInt16? = nil) {
        var host = Substring(text)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard host.firstIndex(of: ":") == colon else { return nil }  // Bare IPv6 needs brackets.
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isASCII), let port = UInt16(portText) else { return nil }
            self.init(host: String(host), port: port)
        } else {
            guard let defaultPort else { return nil }
            self.init(host: String(host), port: defaultPort)
        }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension StreamLimits {
    /// Checks the values are usable; `source` names where they came from in the error.
    public func validate(source: String) throws(ConfigError) {
        guard (1...Self.maxStreamsPerAssociation).contains(streamsPerAssociation) else {
            throw ConfigError(
                path: source,
                "streams per association must be 1 ... \(Self.maxStreamsPerAssociation), not \(streamsPerAssociation)")
        }
        guard streamWait >= .zero, (0...65536).contains(streamWaitQueue) else {
            throw ConfigError(path: source, "the stream wait must not be negative and its queue 0 ... 65536")
        }
        guard (1...1024).contains(associationsPerKey) else {
            throw ConfigError(path: source, "associations per key must be 1 ... 1024, not \(associationsPerKey)")
        }
        guard (1...Self.maxPathsPerAssociation).contains(pathsPerAssociation) else {
            let limit = Self.maxPathsPerAssociation
            throw ConfigError(path: source, "paths per association must be 1 ... \(limit), not \(pathsPerAssociation)")
        }
        guard streamCredit >= UInt32(AggLimits.maxDataPayload), streamCredit <= AggLimits.maxCredit else {
            throw ConfigError(path: source,
                "stream credit must be \(AggLimits.maxDataPayload) ... \(AggLimits.maxCredit) bytes, not \(streamCredit)")
        }
        guard bufferedBytesPerAssociation >= Int(streamCredit) else {
            throw ConfigError(path: source, "buffered bytes per association must be at least the stream credit")
        }
        for (name, value) in [("stream idle timeout", streamIdleTimeout), ("association idle timeout",
            associationIdleTimeout), ("authentication timeout", authenticationTimeout),
            ("connect timeout", connectTimeout)] where value <= .zero {
            throw ConfigError(path: source, "\(name) must be positive")
        }
    }
}

/// Everything aggserver needs to run; `ConfigFile` fills it from the config file and the flags.
public struct ServerSettings: Equatable, Sendable {
    /// UDP addresses to receive SCTP-over-UDP on (RFC 6951's port 9899 by default), one channel each.
    public var listenAddresses = [HostAndPort(host: "0.0.0.0", port: 9899), HostAndPort(host: "::", port: 9899)]
    /// The key file with one line per client.
    public var pskFile = "/etc/agg/server.keys"
    /// Prefixes egress may reach although the policy refuses them by default (e.g. a LAN the server serves); see
    /// `EgressPolicy` for how they open refused ranges and the server's own addresses.
    public var egressAllow: [CIDR] = []
    /// Destination ports egress refuses whatever the address (SMTP's 25 by default); empty allows every port.
    public var egressDenyPorts: [UInt16] = EgressPolicy.defaultDeniedPorts.sorted()
    public var limits = StreamLimits()
    /// Bounds on the name lookups egress runs for the clients' OPENs.
    public var lookupLimits = LookupScheduler.Limits()
    /// Where to serve metrics over HTTP; nil disables them.
    public var metricsAddress: HostAndPort?
    /// How long SIGTERM lets running streams finish before the associations are shut down.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Log every association and stream (debug level).
    public var verbose = false
    /// Also accept plain RFC 6951 datagrams (`--allow-plaintext`); encrypted clients are served either way.
    public var allowPlaintext = false
    /// UDP segmentation offload (`segmentation-offload`, default on): runs of datagrams leave in one system call
    /// and arrive in one. Off, every datagram crosses the kernel alone, as a packet capture on this host shows it.
    public var segmentationOffload = true
    /// The UDP relay: idle timeout, datagram lifetime, per-key limits on flows and waiting datagrams.
    public var udp = UDPRelaySettings()
    /// Each path's congestion controller (`congestion-control`): `bbr` (the default) paces at the path's measured
    /// bandwidth and keeps the bottleneck's queue short; `reno` is RFC 9260's loss-based window, which fills it
    /// (BENCHMARKS.md, "Latency under load").
    public var congestionControl = SCTPCongestionControl.bbr
    /// Event loops, each serving its own share of the clients (`threads`, default one per core; 1 runs everything
    /// on one loop, as before sharding).
    public var threads = System.coreCount

    public init() {}

    /// The egress policy of these settings; the server's own addresses are the caller's to fill (they are read
    /// from the interfaces at start and on reload).
    public var egressPolicy: EgressPolicy { EgressPolicy(allowed: egressAllow, deniedPorts: Set(egressDenyPorts)) }

    public func validate() throws(ConfigError) {
        guard !listenAddresses.isEmpty else { throw ConfigError(path: "server settings", "no listen address") }
        try limits.validate(source: "server settings")
    }
}

/// Everything aggclient needs to run; `ConfigFile` fills it from the config file and the flags.
public struct ClientSettings: Equatable, Sendable {
    /// The server's UDP addresses (SCTP over UDP): one server group. This or `serverGroups`.
    public var serverAddresses: [HostAndPort] = []
    /// Several servers in order of preference (`server-group`), each its addresses and optionally its own key
    /// file; the client fails over to the next one when the one in use stops answering.
    public var serverGroups: [ServerGroupSpec] = []
    /// With several server groups: how long the server in use may send nothing authenticated before the next
    /// group is tried (`server-timeout`).
    public var serverTimeout: Duration = .milliseconds(1500)
    /// Local addresses or interface names to send from, one path each, optionally named (`PathSpec`: `lte=wwan0`);
    /// empty means one path from the wildcard address.
    public var localAddresses: [String] = []
    /// The SOCKS5 listener; nil disables it.
    public var socksAddress: HostAndPort? = HostAndPort(host: "127.0.0.1", port: 1080)
    /// The HTTP proxy listener (CONNECT and absolute-URI requests); nil disables it.
    public var httpAddress: HostAndPort? = HostAndPort(host: "127.0.0.1", port: 8080)
    /// The transparent listener for router mode: TCP connections nftables `redirect`s or `tproxy`s to it go to
    /// their original destination (`TransparentListener`); nil (the default) disables it.
    public var transparentAddress: HostAndPort?
    /// The key file with this client's own line.
    public var pskFile = "/etc/agg/client.key"
    /// Users the SOCKS and HTTP listeners accept (`USER:PASS`); with none here and no `proxyUserFile`, no
    /// authentication is asked for.
    public var proxyUsers: [ProxyIngressConfiguration.Credentials] = []
    /// A file of `USER:PASS` lines (mode 600) whose users are accepted too; read at start.
    public var proxyUserFile: String?
    public var limits = StreamLimits()
    /// Where to serve metrics over HTTP; nil disables them.
    public var metricsAddress: HostAndPort?
    /// How long SIGTERM lets running connections finish before the association is shut down.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Log every association and stream (debug level).
    public var verbose = false
    /// Send plain RFC 6951 datagrams instead of encrypting them (`--plaintext`), for interop and tshark; the server
    /// must allow it.
    public var plaintext = false
    /// UDP segmentation offload (`segmentation-offload`, default on): runs of datagrams leave in one system call
    /// and arrive in one. Off, every datagram crosses the kernel alone, as a packet capture on this host shows it.
    public var segmentationOffload = true
    /// The UDP relay (SOCKS5 UDP ASSOCIATE): idle timeout, datagram lifetime.
    public var udp = UDPRelaySettings()
    /// Each path's congestion controller (`congestion-control`): `bbr` (the default) paces at the path's measured
    /// bandwidth and keeps the bottleneck's queue short; `reno` is RFC 9260's loss-based window, which fills it
    /// (BENCHMARKS.md, "Latency under load").
    public var congestionControl = SCTPCongestionControl.bbr
    /// When a SOCKS or HTTP CONNECT client hears that its target is connected (`early-reply`): `known` (the
    /// default) answers at once for a target that accepted a connection from the same LAN host through the
    /// association in the last five minutes and after the server's answer otherwise; `never` always waits for the
    /// server, so every failure gets the protocol's own reply; `always` never waits, so a target the server cannot
    /// reach shows as a reset. Plain HTTP proxy requests always wait.
    public var earlyReply = EarlyReply.known

    public init() {}

    /// The paths, parsed.
    public func pathSpecs() throws(ConfigError) -> [PathSpec] {
        var specs: [PathSpec] = []
        for text in localAddresses {
            do {
                specs.append(try PathSpec.parse(text))
            } catch {
                throw ConfigError(path: text, error.message)
            }
        }
        return specs
    }

    public func validate() throws(ConfigError) {
        guard !serverAddresses.isEmpty || !serverGroups.isEmpty else {
            throw ConfigError(path: "client settings", "no server address")
        }
        guard serverAddresses.isEmpty || serverGroups.isEmpty else {
            throw ConfigError(path: "client settings", "both server and server-group are set: use one")
        }
        guard socksAddress != nil || httpAddress != nil || transparentAddress != nil else {
            throw ConfigError(path: "client settings", "no SOCKS, HTTP or transparent listener is enabled")
        }
        try limits.validate(source: "client settings")
    }
}

extension StreamLimits {
    /// The largest `limits.paths-per-association`: more paths than this would make per-path work (heartbeats,
    /// the scheduler's walk over the paths) a cost one association imposes on all.
    public static let maxPathsPerAssociation = 64

    /// `limits.stream-credit`: from one DATA message's payload to the protocol's largest credit.
    static var streamCreditType: ConfigType<UInt32> {
        ConfigType.byteCount(in: AggLimits.maxDataPayload...Int(AggLimits.maxCredit)).map(
            { UInt32($0) }, back: { Int($0) })
    }

    /// `limits.buffered-bytes-per-association`: from one DATA message's payload to 16 GiB.
    static var bufferedBytesType: ConfigType<Int> {
        ConfigType.byteCount(in: AggLimits.maxDataPayload...(16 << 30))
    }

    /// What `validate` would refuse, blamed on a config key.
    func configProblems() -> [(key: String, message: String)] {
        if Int(streamCredit) > bufferedBytesPerAssociation {
            let limit = ByteCount.format(bufferedBytesPerAssociation)
            return [("limits.stream-credit", "must be at most limits.buffered-bytes-per-association (\(limit))")]
        }
        do {
            try validate(source: "limits")
            return []
        } catch {
            return [("limits", error.message)]
        }
    }
}
