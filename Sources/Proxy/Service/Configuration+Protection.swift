import AggProtocol

extension AggClientService.Configuration {
    /// The driver's datagram protection: the encryption layer with this client's key unless `plaintext`.
    var protection: DatagramProtection { plaintext ? .plaintext : .client(key: key) }
}

extension AggServerService.Configuration {
    /// The driver's datagram protection: the encryption layer with every client's key.
    var protection: DatagramProtection { .server(keys: keys, allowPlaintext: allowPlaintext) }
}
