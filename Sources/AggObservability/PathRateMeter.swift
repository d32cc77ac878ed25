/// Turns the engine's cumulative per-path counters into rates over the interval since the previous sample:
/// throughput each way, retransmissions per packet sent, and each path's share of its association's traffic.
/// A path seen for the first time gets zero rates; paths that vanished are forgotten.
struct PathRateMeter {
    /// The counters of one path at the previous sample.
    private struct Reading {
        var bytesSent: Int
        var bytesReceived: Int
        var packetsSent: Int
        var retransmissions: Int
    }

    private var readings: [String: Reading] = [:]
    private var lastTime: Double?

    /// Fills the rate fields of every path in `associations` from the change since the previous call; `time` is in
    /// seconds on a monotonic clock.
    mutating func update(_ associations: inout [StatusSnapshot.Association], at time: Double) {
        let elapsed = lastTime.map { time - $0 } ?? 0
        var next: [String: Reading] = [:]
        for a in associations.indices {
            var traffic: [Double] = []
            for p in associations[a].paths.indices {
                let path = associations[a].paths[p]
                let reading = Reading(
                    bytesSent: path.bytesSent, bytesReceived: path.bytesReceived, packetsSent: path.packetsSent,
                    retransmissions: path.retransmissions)
                next[path.id] = reading
                guard elapsed > 0, let previous = readings[path.id] else {
                    associations[a].paths[p].sendRate = 0
                    associations[a].paths[p].receiveRate = 0
                    associations[a].paths[p].lossRate = 0
                    traffic.append(0)
                    continue
                }
                // Counters of a new association under a reused id start from zero again: never a negative rate.
                let sent = max(reading.bytesSent - previous.bytesSent, 0)
                let received = max(reading.bytesReceived - previous.bytesReceived, 0)
                let packets = max(reading.packetsSent - previous.packetsSent, 0)
                let retransmitted = max(reading.retransmissions - previous.retransmissions, 0)
                associations[a].paths[p].sendRate = Double(sent) / elapsed
                associations[a].paths[p].receiveRate = Double(received) / elapsed
                associations[a].paths[p].lossRate = packets > 0 ? min(Double(retransmitted) / Double(packets), 1) : 0
                traffic.append(Double(sent + received))
            }
            let total = traffic.reduce(0, +)
            for p in associations[a].paths.indices {
                associations[a].paths[p].share = total > 0 ? traffic[p] / total : 0
            }
        }
        readings = next
        lastTime = time
    }
}
