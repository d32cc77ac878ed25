import Testing

@testable import SCTPEngine

extension Components {
    /// `BBRController` fed acks from a modelled path (a fixed bottleneck rate and round trip) with a fake clock:
    /// its modes, pacing rate and window, and its answers to loss and T3-rtx.
    @Suite struct BBRControllerTests {
        let mtu = 1200

        /// A path delivering `rate` bytes per second with a round trip of `rtt`: every ack covers one MTU and its
        /// sample spans one round trip of deliveries.
        struct ModelPath {
            var now = SCTPTime(nanoseconds: 1_000_000_000)
            var delivered = 0
            var rate: Double
            var rtt: SCTPDuration
            let mtu: Int

            mutating func ack(flight: Int, appLimited: Bool = false, tsn: UInt32 = 100) -> CongestionAck {
                delivered += mtu
                now = now + .nanoseconds(Int64(Double(mtu) / rate * 1e9))
                let perRTT = Int(rate * rtt.seconds)
                var ack = CongestionAck(
                    bytesAcked: mtu, ackPointAdvanced: true, flightSizeBeforeAck: flight + mtu, ackPoint: TSN(tsn),
                    allDataAcked: false)
                ack.now = now
                ack.delivered = delivered
                ack.flightSize = flight
                ack.rttSample = rtt
                ack.rateSample = OutstandingData.RateSample(
                    deliveredBytes: min(perRTT, delivered), interval: rtt, priorDelivered: max(0, delivered - perRTT),
                    isAppLimited: appLimited, rtt: rtt)
                return ack
            }

            /// Feeds acks with the whole window in flight until startup sees the plateau (at most a second).
            mutating func runUntilThePipeIsFull(_ cc: inout BBRController) {
                for _ in 0..<(Int(rate) / mtu) where !cc.hasFilledPipe { cc.handleAck(ack(flight: cc.cwnd)) }
            }

            /// Feeds acks for `seconds` with `flight` in flight.
            mutating func run(_ cc: inout BBRController, seconds: Double, flight: (BBRController) -> Int) {
                let count = Int(rate * seconds) / mtu
                for _ in 0..<count { cc.handleAck(ack(flight: flight(cc))) }
            }
        }

        /// 10 Mbit/s = 1.25 MB/s, 40 ms: a bandwidth-delay product of 50 kB.
        func path() -> ModelPath { ModelPath(rate: 1_250_000, rtt: .milliseconds(40), mtu: mtu) }

        @Test func startupFindsTheBandwidthThenDrainsIntoProbeBandwidth() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            #expect(cc.mode == .startup)
            #expect(cc.pacingRate == nil)
            // In startup the window grows by every byte acknowledged.
            let start = cc.cwnd
            cc.handleAck(model.ack(flight: start))
            #expect(cc.cwnd == start + mtu)
            // A path that delivers no more however much is sent: startup sees the plateau within a few rounds.
            model.runUntilThePipeIsFull(&cc)
            #expect(cc.hasFilledPipe)
            #expect(model.now < SCTPTime(nanoseconds: 1_500_000_000))
            #expect(cc.mode == .drain)
            #expect(abs(cc.bandwidth - 1_250_000) < 1)
            #expect(cc.minRTT == .milliseconds(40))
            // Drain ends once the flight is down to one BDP.
            cc.handleAck(model.ack(flight: 40_000))
            #expect(cc.mode == .probeBandwidth)
        }

        /// A queue that does not drain (another flow keeps it full) ends drain after three round trips: pacing at a
        /// third of the estimate any longer would only shrink the estimate.
        @Test func drainEndsAfterThreeRoundsWhenTheQueueStays() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.runUntilThePipeIsFull(&cc)
            #expect(cc.mode == .drain)
            let start = cc.roundCount
            while cc.mode == .drain && cc.roundCount < start + 10 { cc.handleAck(model.ack(flight: 80_000)) }
            #expect(cc.mode == .probeBandwidth)
            #expect(cc.roundCount == start + BBRController.drainMaxRounds, "\(cc.roundCount - start) rounds")
        }

        /// A queue standing through a whole min RTT (here 20 ms, more than a quarter of the 40 ms min RTT) holds
        /// cwnd to one BDP without touching the estimate; a window that delivers under 0.8 of the estimate (the
        /// rate halved) cuts the estimate to that delivery; once the queue is gone cwnd is two BDP again.
        @Test func aStandingQueueHoldsOneBDPAndARateDropCutsTheEstimate() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 0.5) { $0.cwnd }
            model.run(&cc, seconds: 2) { _ in 45_000 }
            #expect(cc.standingQueueSince == nil)
            #expect(abs(cc.cwnd - (2 * 50_000 + 3 * mtu)) <= 1, "\(cc.cwnd)")

            model.rtt = .milliseconds(60)
            model.run(&cc, seconds: 0.1) { _ in 75_000 }
            #expect(cc.standingQueueSince != nil)
            #expect(abs(cc.cwnd - (50_000 + 3 * mtu)) <= 1, "\(cc.cwnd)")
            #expect(abs(cc.bandwidth - 1_250_000) < 1)

            model.rate = 625_000
            model.run(&cc, seconds: 0.1) { _ in 37_500 }
            #expect(abs(cc.bandwidth - 625_000) < 1, "\(cc.bandwidth)")
            #expect(cc.minRTT == .milliseconds(40))

            model.rtt = .milliseconds(40)
            model.run(&cc, seconds: 0.3) { _ in 25_000 }
            #expect(cc.standingQueueSince == nil)
            #expect(abs(cc.cwnd - (2 * 25_000 + 3 * mtu)) <= 1, "\(cc.cwnd)")
        }

        /// A cut takes the largest rate of the window the drop fell in, which may still hold deliveries from before
        /// it: here the rate falls to 0.8 MB/s but the cut lands at 0.95. The next window of standing queue delivers
        /// under 0.95 of that and refines the estimate to what the path now carries, so cwnd's one BDP is the path's
        /// again. (Left at 0.95, the BDP and budget would queue about 13 ms at 0.8 MB/s; in the simulator such a
        /// queue was taken for a foreign one and the path competed with itself.)
        @Test func theWindowAfterACutRefinesTheEstimate() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 0.5) { $0.cwnd }
            model.run(&cc, seconds: 2) { _ in 45_000 }

            model.rtt = .milliseconds(60)
            model.rate = 950_000
            for _ in 0..<1000 where cc.bandwidth > 1_000_000 { cc.handleAck(model.ack(flight: 60_000)) }
            #expect(abs(cc.bandwidth - 950_000) < 1, "\(cc.bandwidth)")

            // From here the round trip is the propagation delay and what this path's window queues at 0.8 MB/s.
            model.rate = 800_000
            for _ in 0..<(Int(0.3 * model.rate) / mtu) {
                let flight = cc.cwnd
                let queued = max(0, Double(flight + mtu) - model.rate * 0.040) / model.rate
                model.rtt = .milliseconds(40) + .nanoseconds(Int64(queued * 1e9))
                cc.handleAck(model.ack(flight: flight))
            }
            #expect(abs(cc.bandwidth - 800_000) < 1, "\(cc.bandwidth)")
            #expect(cc.competition == nil)
        }

        /// A queue that stands while the path keeps no more than a BDP of its own in flight is another flow's: after
        /// four round trips the path competes as a loss-based flow does (a packet more per window acknowledged, half
        /// the window on a loss), keeps the propagation round trip, and goes back to the model once a probe-RTT sees
        /// the queue gone, not while it stays.
        @Test func aForeignQueueIsCompetedForUntilProbeRTTFindsItGone() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 0.5) { $0.cwnd }
            model.run(&cc, seconds: 2) { _ in 45_000 }
            #expect(cc.competition == nil)
            #expect(cc.phase == .probeBandwidth)

            model.rtt = .milliseconds(80)
            model.run(&cc, seconds: 1) { _ in 40_000 }
            #expect(cc.competition != nil)
            #expect(cc.phase == .competing)
            #expect(cc.minRTT == .milliseconds(40))

            let before = cc.cwnd
            for _ in 0..<(before / mtu + 1) { cc.handleAck(model.ack(flight: cc.cwnd)) }
            #expect(cc.cwnd == before + mtu, "\(before) -> \(cc.cwnd)")
            let entered = cc.handleFastRetransmit(highestOutstandingTSN: TSN(900), flightSize: cc.cwnd)
            #expect(entered)
            #expect(cc.cwnd == (before + mtu) / 2)
            cc.handleAck(model.ack(flight: cc.cwnd, tsn: 900))
            #expect(!cc.isInFastRecovery)
            #expect(cc.cwnd == (before + mtu) / 2)

            // Probe-RTT comes when the minimum is ten seconds old; the queue still stands through it.
            func runUntil(_ done: (BBRController) -> Bool) {
                for _ in 0..<20_000 where !done(cc) { cc.handleAck(model.ack(flight: cc.cwnd)) }
            }
            runUntil { $0.mode == .probeRTT }
            #expect(cc.phase == .probeRTT)
            runUntil { $0.mode == .probeBandwidth }
            #expect(cc.competition != nil)
            #expect(cc.phase == .competing)
            #expect(cc.minRTT == .milliseconds(40))
            // The next one finds the propagation round trip again: the other flow is gone.
            runUntil { $0.mode == .probeRTT }
            model.rtt = .milliseconds(40)
            runUntil { $0.mode == .probeBandwidth }
            #expect(cc.competition == nil)
            // One BDP and the budget, and the acknowledgement that ended probe-RTT.
            #expect(cc.cwnd <= 50_000 + 4 * mtu, "\(cc.cwnd)")
        }

        @Test func probeBandwidthPacesAtTheEstimateAndHoldsTwoBDP() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 0.5) { $0.cwnd }
            model.run(&cc, seconds: 2) { _ in 45_000 }
            #expect(cc.mode == .probeBandwidth)
            // Over a whole gain cycle the mean gain is 1; the pacing rate is always gain × 0.99 × bandwidth.
            let gain = cc.pacingGain
            #expect([1.25, 0.75, 1].contains(gain))
            #expect(abs(cc.pacingRate! - gain * 0.99 * 1_250_000) < 1)
            // cwnd = 2 × BDP (50 kB) + 3 MTU (give or take the rounding of the estimate).
            #expect(abs(cc.cwnd - (2 * 50_000 + 3 * mtu)) <= 1, "\(cc.cwnd)")
        }

        /// 1 Gbit/s with a 100 µs round trip, as on loopback: a BDP of 12.5 kB. The window keeps three send quanta
        /// (half a millisecond at the pacing rate each) above the model, so a round trip stretched by the receiver's
        /// batching does not hold the path to 2 × 12.5 kB; at 10 Mbit/s the quantum is two packets and the budget
        /// stays three packets (the test above).
        @Test func aFastPathKeepsThreeSendQuantaAboveTheModel() {
            var cc = BBRController(mtu: mtu)
            var model = ModelPath(rate: 125_000_000, rtt: .microseconds(100), mtu: mtu)
            model.run(&cc, seconds: 0.05) { $0.cwnd }
            model.run(&cc, seconds: 0.2) { _ in 12_000 }
            #expect(cc.mode == .probeBandwidth)
            let quantum = SendRateBucket.sendQuantum(bytesPerSecond: cc.pacingRate!, mtu: mtu)
            #expect(quantum > 40_000 && quantum <= 64 << 10, "\(quantum)")
            #expect(abs(cc.cwnd - (2 * 12_500 + 3 * quantum)) <= 1, "\(cc.cwnd)")
        }

        @Test func theSendQuantumIsTwoPacketsToSixtyFourKiB() {
            #expect(SendRateBucket.sendQuantum(bytesPerSecond: 2_500_000, mtu: 1500) == 3000)
            #expect(SendRateBucket.sendQuantum(bytesPerSecond: 62_500_000, mtu: 1500) == 31_250)
            #expect(SendRateBucket.sendQuantum(bytesPerSecond: 1e12, mtu: 1500) == 65_536)
        }

        @Test func gainCycleProbesThenDrainsOncePerEightRounds() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.runUntilThePipeIsFull(&cc)
            var gains: [Double] = [cc.pacingGain]
            cc.handleAck(model.ack(flight: 40_000))
            for _ in 0..<(8 * 50_000 / mtu + 200) {
                cc.handleAck(model.ack(flight: 63_000))  // more than 1.25 BDP: the probing phase may end
                if gains.last != cc.pacingGain { gains.append(cc.pacingGain) }
            }
            // Drain, then the cycle from its third phase: 1 (six rounds), 1.25, 0.75, 1 ...
            #expect(gains.prefix(4) == [1 / BBRController.highGain, 1, 1.25, 0.75], "\(gains)")
        }

        @Test func anAppLimitedSampleDoesNotLowerTheEstimate() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 0.5) { $0.cwnd }
            let before = cc.bandwidth
            model.rate = 200_000
            for _ in 0..<50 { cc.handleAck(model.ack(flight: 1000, appLimited: true)) }
            #expect(cc.bandwidth == before)
        }

        @Test func theEstimateForgetsAFasterPastAfterTenRounds() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 1) { _ in 45_000 }
            model.rate = 625_000  // the path halves
            model.run(&cc, seconds: 0.2) { _ in 45_000 }
            #expect(abs(cc.bandwidth - 1_250_000) < 1, "still within ten rounds")
            model.run(&cc, seconds: 1.5) { _ in 45_000 }
            #expect(abs(cc.bandwidth - 625_000) < 1)
        }

        @Test func fastRetransmitBoundsTheFlightThenRestoresTheWindow() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 2) { _ in 45_000 }
            let before = cc.cwnd
            let entered = cc.handleFastRetransmit(highestOutstandingTSN: TSN(500), flightSize: 30_000)
            #expect(entered)
            #expect(cc.isInFastRecovery)
            #expect(cc.cwnd == 30_000 + mtu)
            let again = cc.handleFastRetransmit(highestOutstandingTSN: TSN(600), flightSize: 20_000)
            #expect(!again)
            // In recovery's first round the window only refills what is delivered.
            cc.handleAck(model.ack(flight: 28_000, tsn: 300))
            #expect(cc.cwnd == 30_000 + mtu)
            // Recovery ends at its exit point; the model was never touched, the window comes back.
            cc.handleAck(model.ack(flight: 28_000, tsn: 500))
            #expect(!cc.isInFastRecovery)
            #expect(cc.cwnd >= before)
            #expect(abs(cc.bandwidth - 1_250_000) < 1)
        }

        @Test func t3ExpiryCutsToOneMTUAndTheNextAdvanceRestores() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 2) { _ in 45_000 }
            let before = cc.cwnd
            cc.handleRetransmissionTimeout()
            #expect(cc.cwnd == mtu)
            cc.handleAck(model.ack(flight: 0))
            #expect(cc.cwnd >= before)
        }

        @Test func aStaleMinimumRTTSendsTheControllerToProbeRTTAndBack() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 2) { _ in 45_000 }
            // Ten seconds of a queue that adds 5 ms: the minimum is not refreshed, then expires.
            model.rtt = .milliseconds(45)
            model.run(&cc, seconds: 9) { _ in 45_000 }
            #expect(cc.mode == .probeBandwidth)
            model.run(&cc, seconds: 1.1) { _ in 45_000 }
            #expect(cc.mode == .probeRTT)
            // Half a BDP (of the 45 ms minimum probe-RTT started from: 28 kB).
            #expect(abs(cc.cwnd - 28_125) <= 1, "\(cc.cwnd)")
            // With the flight down to half a BDP, 200 ms and a round trip later it returns.
            model.rtt = .milliseconds(40)
            model.run(&cc, seconds: 0.3) { _ in 20_000 }
            #expect(cc.mode == .probeBandwidth)
            #expect(cc.minRTT == .milliseconds(40))
            #expect(cc.cwnd > 50_000)
        }

        /// A path whose own queue stays short (round trips within a sixteenth of the minimum: 42 ms against 40)
        /// keeps its minimum fresh: thirty seconds without probe-RTT, so without its 200 ms at half a BDP every ten
        /// seconds (about 1 % of the path's rate, which aggregation over two paths gave away).
        @Test func roundTripsNearTheMinimumKeepItFresh() {
            var cc = BBRController(mtu: mtu)
            var model = path()
            model.run(&cc, seconds: 2) { _ in 45_000 }
            model.rtt = .milliseconds(42)
            var probed = false
            for _ in 0..<(Int(model.rate * 30) / mtu) {
                cc.handleAck(model.ack(flight: 45_000))
                if cc.mode == .probeRTT { probed = true }
            }
            #expect(!probed)
            #expect(cc.minRTT == .milliseconds(40))
            #expect(cc.mode == .probeBandwidth)
        }

        @Test func windowedMaxKeepsTheLargestValueOfItsWindow() {
            var filter = WindowedMaxFilter(window: 10)
            filter.update(5, round: 1)
            filter.update(9, round: 2)
            filter.update(3, round: 3)
            #expect(filter.value == 9)
            for round in 4...12 as ClosedRange<UInt64> { filter.update(4, round: round) }
            #expect(filter.value == 9, "round 2 is within ten rounds of round 12")
            filter.update(4, round: 13)
            #expect(filter.value == 4)
            filter.update(6, round: 14)
            #expect(filter.value == 6)
        }
    }
}
