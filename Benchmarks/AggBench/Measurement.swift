/// Times a body repeatedly and keeps the best trial, which is the least disturbed by other load on the machine.
struct Measurement {
    /// Each trial runs the body until at least this much time has passed.
    var trialDuration: Duration
    var trials: Int

    /// Returns the best throughput in bytes per second for a body that processes `bytesPerCall` each call.
    func bestThroughput(bytesPerCall: Int, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        // Warm up: caches, lazily built tables, CPU frequency.
        let warmUpEnd = clock.now.advanced(by: trialDuration / 4)
        while clock.now < warmUpEnd { body() }

        var best = 0.0
        for _ in 0..<trials {
            var calls = 0
            var batch = 1
            let start = clock.now
            var elapsed = Duration.zero
            while elapsed < trialDuration {
                for _ in 0..<batch { body() }
                calls += batch
                elapsed = start.duration(to: clock.now)
                // Read the clock about every millisecond, not after every call.
                if elapsed < .milliseconds(1) { batch *= 2 }
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            best = max(best, Double(calls * bytesPerCall) / seconds)
        }
        return best
    }
}
