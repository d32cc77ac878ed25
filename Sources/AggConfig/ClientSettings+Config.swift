import AggOperations
import AggProtocol
import NIOCore
import SCTPEngine

extension ClientSettings {
    /// aggclient's config file keys: each line maps one key (and the flag `--` + its last component) to a field.
    public static var configKeys: [ConfigKey<ClientSettings>] {
        [
            ConfigKey("server", \.serverAddresses, .list(of: .address(defaultPort: 9899))),
            ConfigKey("path", \.localAddresses, .list(of: .pathSpec)),
            ConfigKey("socks", \.socksAddress, .listener),
            ConfigKey("http", \.httpAddress, .listener),
            ConfigKey("server-group", \.serverGroups, .list(of: .serverGroup(defaultPort: 9899))),
            ConfigKey("server-timeout", \.serverTimeout, .duration()),
            ConfigKey("transparent", \.transparentAddress, .optionalAddress),
            ConfigKey("psk-file", \.pskFile, .string("the path of this client's key file")),
            ConfigKey("proxy-user", \.proxyUsers, .list(of: .proxyUser)),
            ConfigKey("proxy-user-file", \.proxyUserFile, .optionalPath("the path of a file of USER:PASS lines")),
            ConfigKey("metrics", \.metricsAddress, .optionalAddress),
            ConfigKey("shutdown-timeout", \.shutdownTimeout, .duration(allowingZero: true)),
            ConfigKey("verbose", \.verbose, .boolean),
            ConfigKey("plaintext", \.plaintext, .boolean),
            ConfigKey("segmentation-offload", \.segmentationOffload, .boolean),
            ConfigKey("congestion-control", \.congestionControl, .congestionControl),
            ConfigKey("early-reply", \.earlyReply, .earlyReply),
            ConfigKey("udp-idle-timeout", \.udp.idleTimeout, .duration()),
            ConfigKey("udp-lifetime", \.udp.lifetime, .duration()),
            ConfigKey(
                "limits.streams-per-association", \.limits.streamsPerAssociation,
                .integer(in: 1...StreamLimits.maxStreamsPerAssociation)),
            ConfigKey("limits.stream-wait", \.limits.streamWait, .duration(allowingZero: true)),
            ConfigKey("limits.stream-wait-queue", \.limits.streamWaitQueue, .integer(in: 0...65536)),
            ConfigKey(
                "limits.paths-per-association", \.limits.pathsPerAssociation,
                .integer(in: 1...StreamLimits.maxPathsPerAssociation)),
            ConfigKey("limits.stream-credit", \.limits.streamCredit, StreamLimits.streamCreditType),
            ConfigKey("limits.stream-idle-timeout", \.limits.streamIdleTimeout, .duration()),
            ConfigKey(
                "limits.buffered-bytes-per-association", \.limits.bufferedBytesPerAssociation,
                StreamLimits.bufferedBytesType),
        ]
    }

    /// What `ConfigFile` needs to load aggclient's settings; the file is /etc/agg/aggclient.toml by default.
    public static var configSchema: ConfigSchema<ClientSettings> {
        ConfigSchema(
            daemon: "aggclient", defaultPath: "/etc/agg/aggclient.toml", defaults: ClientSettings(), keys: configKeys,
            otherDaemon: ("aggserver", ServerSettings.configKeys.map(\.name)),
            validate: { settings in
                var problems: [(key: String, message: String)] = []
                if settings.serverAddresses.isEmpty, settings.serverGroups.isEmpty {
                    problems.append(
                        (
                            "server",
                            "no server address: set server = [\"HOST:PORT\"] in the config file or give --server"
                        ))
                }
                if !settings.serverAddresses.isEmpty, !settings.serverGroups.isEmpty {
                    problems.append(
                        (
                            "server-group",
                            "server and server-group are both set: list the first server as the first server-group"
                        ))
                }
                if settings.socksAddress == nil, settings.httpAddress == nil, settings.transparentAddress == nil {
                    problems.append(
                        ("socks", "socks, http and transparent are all \"off\": enable at least one listener"))
                }
                problems += transparentProblems(settings)
                return problems + settings.limits.configProblems()
            })
    }

    /// What is wrong with the transparent listener: it must be an IP literal (the address nftables `redirect`s or
    /// `tproxy`s to, usually the wildcard) with a port, and not the address of another listener.
    static func transparentProblems(_ settings: ClientSettings) -> [(key: String, message: String)] {
        guard let address = settings.transparentAddress else { return [] }
        guard SCTPIPAddress(address.host) != nil else {
            let message = "\(address.host) is not an IP address (use 0.0.0.0, [::] or this host's LAN address)"
            return [("transparent", message)]
        }
        guard address.port != 0 else { return [("transparent", "needs a port other than 0")] }
        for (key, other) in [("socks", settings.socksAddress), ("http", settings.httpAddress)] {
            guard let other, other.port == address.port else { continue }
            let ip = SCTPIPAddress(address.host)
            let otherIP = SCTPIPAddress(other.host)
            if ip == otherIP || ip?.isWildcard == true || otherIP?.isWildcard == true {
                let message = "port \(address.port) is the \(key) listener's (\(other)): use its own port"
                return [("transparent", message)]
            }
        }
        return []
    }

    /// The lifecycle options these settings imply, with the sockets systemd passed.
    public func daemonOptions(listenFDs: [SocketActivation.ListenFD]) -> DaemonOptions {
        var options = DaemonOptions()
        options.listenFDs = listenFDs
        options.shutdownTimeout = .init(shutdownTimeout)
        return options
    }
}

extension ConfigType where Value == EarlyReply {
    /// `"known"`, `"never"` or `"always"`: when aggclient answers a SOCKS or HTTP CONNECT client.
    public static var earlyReply: ConfigType {
        .text(
            "\"known\", \"never\" or \"always\"", parse: { EarlyReply(rawValue: $0) },
            format: { TOMLValue.quoted($0.rawValue) })
    }
}
