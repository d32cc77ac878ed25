import AggConfig
import AggEgress
import AggProtocol
import NIOCore
import SCTPEngine

// MARK: - Settings → service configuration

/// Turns command-line settings into the services' configurations: names resolved, key files read.
extension ServiceSetup {
    /// The client's configuration: server addresses resolved, paths resolved (every non-loopback IPv4 address
    /// when none is given), the key file read.
    public static func clientConfiguration(
        _ settings: ClientSettings
    ) throws(ConfigError)
        -> AggClientService.Configuration
    {
        try settings.validate()
        func resolve(_ addresses: [HostAndPort]) throws(ConfigError) -> [SCTPSocketAddress] {
            var resolved: [SCTPSocketAddress] = []
            for server in addresses {
                resolved.append(SCTPSocketAddress(ip: try resolveHost(server.host), port: server.port))
            }
            return resolved
        }
        var groups: [AggClientService.ServerGroup] = []
        for group in settings.serverGroups {
            groups.append(
                AggClientService.ServerGroup(
                    addresses: try resolve(group.addresses), key: try group.pskFile.map(KeyFile.loadClientKey)))
        }
        let servers = groups.isEmpty ? try resolve(settings.serverAddresses) : groups[0].addresses
        let specs = try settings.pathSpecs()
        var paths: [AggClientService.Configuration.Path] = []
        for spec in specs {
            let interface = SCTPIPAddress(spec.target) == nil ? spec.target : nil
            paths.append(
                .init(
                    address: try resolvePath(spec.target), interface: interface, name: spec.name ?? interface,
                    policy: spec.policy))
        }
        if paths.isEmpty { paths = [.init(address: servers[0].ip.isIPv4 ? .anyV4 : .anyV6)] }
        let key = try KeyFile.loadClientKey(path: settings.pskFile)
        var configuration = AggClientService.Configuration(servers: servers, paths: paths, key: key)
        configuration.serverGroups = groups
        configuration.serverTimeout = TimeAmount(settings.serverTimeout)
        configuration.plaintext = settings.plaintext
        configuration.segmentationOffload = settings.segmentationOffload
        configuration.sctp.congestionControl = settings.congestionControl
        configuration.udp = settings.udp
        configuration.limits = settings.limits
        configuration.earlyReply = settings.earlyReply
        return configuration
    }

    /// The server's configuration: listen addresses resolved, every client's key read, the egress policy set.
    public static func serverConfiguration(
        _ settings: ServerSettings
    ) throws(ConfigError)
        -> AggServerService.Configuration
    {
        try settings.validate()
        var listen: [SCTPSocketAddress] = []
        for address in settings.listenAddresses {
            listen.append(SCTPSocketAddress(ip: try resolveHost(address.host), port: address.port))
        }
        let keys = try KeyFile.load(path: settings.pskFile)
        var policy = settings.egressPolicy
        policy.localAddresses = ownAddresses()
        var lookupLimits = settings.lookupLimits
        lookupLimits.queuedPerOwner = min(4 * lookupLimits.perOwner, lookupLimits.queued)
        let egress = EgressConnector(
            policy: policy, connectTimeout: TimeAmount(settings.limits.connectTimeout), lookupLimits: lookupLimits)
        var configuration = AggServerService.Configuration(listen: listen, keys: keys, egress: egress)
        configuration.allowPlaintext = settings.allowPlaintext
        configuration.segmentationOffload = settings.segmentationOffload
        configuration.sctp.congestionControl = settings.congestionControl
        configuration.udp = settings.udp
        configuration.limits = settings.limits
        return configuration
    }
}
