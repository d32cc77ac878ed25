import AggOperations
import AggProtocol
import NIOCore

extension ServerSettings {
    /// aggserver's config file keys: each line maps one key (and the flag `--` + its last component) to a field.
    public static var configKeys: [ConfigKey<ServerSettings>] {
        [
            ConfigKey("listen", \.listenAddresses, .list(of: .address(defaultPort: 9899))),
            ConfigKey("psk-file", \.pskFile, .string("the path of the key file")),
            ConfigKey("egress-allow", \.egressAllow, .list(of: .cidr)),
            ConfigKey("egress-deny-port", \.egressDenyPorts, .portList),
            ConfigKey("metrics", \.metricsAddress, .optionalAddress),
            ConfigKey("shutdown-timeout", \.shutdownTimeout, .duration(allowingZero: true)),
            ConfigKey("verbose", \.verbose, .boolean),
            ConfigKey("allow-plaintext", \.allowPlaintext, .boolean),
            ConfigKey("segmentation-offload", \.segmentationOffload, .boolean),
            ConfigKey("congestion-control", \.congestionControl, .congestionControl),
            ConfigKey("threads", \.threads, .integer(in: 1...1024)),
            ConfigKey("udp-idle-timeout", \.udp.idleTimeout, .duration()),
            ConfigKey("udp-lifetime", \.udp.lifetime, .duration()),
            ConfigKey("limits.udp-flows-per-key", \.udp.flowsPerKey, .integer(in: 1...65536)),
            ConfigKey("limits.udp-queued-datagrams-per-key", \.udp.queuedDatagramsPerKey, .integer(in: 0...65536)),
            ConfigKey(
                "limits.streams-per-association", \.limits.streamsPerAssociation,
                .integer(in: 1...StreamLimits.maxStreamsPerAssociation)),
            ConfigKey("limits.associations-per-key", \.limits.associationsPerKey, .integer(in: 1...1024)),
            ConfigKey(
                "limits.paths-per-association", \.limits.pathsPerAssociation,
                .integer(in: 1...StreamLimits.maxPathsPerAssociation)),
            ConfigKey("limits.stream-credit", \.limits.streamCredit, StreamLimits.streamCreditType),
            ConfigKey("limits.stream-idle-timeout", \.limits.streamIdleTimeout, .duration()),
            ConfigKey(
                "limits.buffered-bytes-per-association", \.limits.bufferedBytesPerAssociation,
                StreamLimits.bufferedBytesType),
            ConfigKey("limits.association-idle-timeout", \.limits.associationIdleTimeout, .duration()),
            ConfigKey("limits.authentication-timeout", \.limits.authenticationTimeout, .duration()),
            ConfigKey("limits.connect-timeout", \.limits.connectTimeout, .duration()),
            ConfigKey("limits.lookups", \.lookupLimits.concurrent, .integer(in: 1...1024)),
            ConfigKey("limits.lookups-per-association", \.lookupLimits.perOwner, .integer(in: 1...64)),
            ConfigKey("limits.lookup-queue", \.lookupLimits.queued, .integer(in: 0...65536)),
            ConfigKey("limits.lookup-timeout", \.lookupLimits.timeout, lookupTimeoutType),
        ]
    }

    /// `limits.lookup-timeout`: a duration, kept as the `TimeAmount` the scheduler uses.
    static var lookupTimeoutType: ConfigType<TimeAmount> {
        ConfigType.duration().map({ TimeAmount($0) }, back: { Duration.nanoseconds($0.nanoseconds) })
    }

    /// What `ConfigFile` needs to load aggserver's settings; the file is /etc/agg/aggserver.toml by default.
    public static var configSchema: ConfigSchema<ServerSettings> {
        ConfigSchema(
            daemon: "aggserver", defaultPath: "/etc/agg/aggserver.toml", defaults: ServerSettings(), keys: configKeys,
            otherDaemon: ("aggclient", ClientSettings.configKeys.map(\.name)),
            validate: { settings in
                var problems: [(key: String, message: String)] = []
                if settings.listenAddresses.isEmpty {
                    problems.append(("listen", "no listen address: set listen = [\"HOST:PORT\"] or leave it out"))
                }
                return problems + settings.limits.configProblems()
            })
    }

    /// The lifecycle options these settings imply.
    public var daemonOptions: DaemonOptions {
        var options = DaemonOptions()
        options.shutdownTimeout = .init(shutdownTimeout)
        return options
    }
}
