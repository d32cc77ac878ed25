import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct CongestionControlTests {
        let mtu = 1200

        /// An ack that allows growth on a fully used window.
        func ack(_ bytes: Int, flight: Int, advanced: Bool = true, point: UInt32 = 100, drained: Bool = false)
            -> CongestionAck
        {
            CongestionAck(
                bytesAcked: bytes, ackPointAdvanced: advanced, flightSizeBeforeAck: flight, ackPoint: TSN(point),
                allDataAcked: drained)
        }

        @Test func initialCwndIsMin4MTUMax2MTU4404() {
            #expect(NewRenoController(mtu: 1500).cwnd == 4404)
            #expect(NewRenoController(mtu: 1200).cwnd == 4404)
            #expect(NewRenoController(mtu: 500).cwnd == 2000)
            #expect(NewRenoController(mtu: 9000).cwnd == 18000)
        }

        @Test func slowStartGrowsByAtMostMTUPerAck() {
            var cc = NewRenoController(mtu: mtu)
            let start = cc.cwnd
            cc.handleAck(ack(3 * mtu, flight: start))
            #expect(cc.cwnd == start + mtu)
            cc.handleAck(ack(100, flight: cc.cwnd))
            #expect(cc.cwnd == start + mtu + 100)
        }

        @Test func slowStartNeedsAFullyUtilizedWindow() {
            var cc = NewRenoController(mtu: mtu)
            let start = cc.cwnd
            cc.handleAck(ack(mtu, flight: start - 2 * mtu))
            #expect(cc.cwnd == start)
        }

        @Test func noGrowthWithoutCumulativeAckAdvance() {
            var cc = NewRenoController(mtu: mtu)
            let start = cc.cwnd
            cc.handleAck(ack(mtu, flight: start, advanced: false))
            #expect(cc.cwnd == start)
        }

        @Test func congestionAvoidanceUsesPartialBytesAcked() {
            var cc = NewRenoController(mtu: mtu, initialSSThresh: 4000)
            let cwnd = cc.cwnd  // 4404 > ssthresh: congestion avoidance
            cc.handleAck(ack(2000, flight: cwnd))
            #expect(cc.cwnd == cwnd)
            #expect(cc.partialBytesAcked == 2000)
            cc.handleAck(ack(2000, flight: cwnd))
            #expect(cc.cwnd == cwnd)
            cc.handleAck(ack(1000, flight: cwnd))
            // 5000 >= cwnd: grow by one MTU, keep the excess.
            #expect(cc.cwnd == cwnd + mtu)
            #expect(cc.partialBytesAcked == 5000 - cwnd)
        }

        @Test func partialBytesAckedCappedWhenWindowNotFull() {
            var cc = NewRenoController(mtu: mtu, initialSSThresh: 4000)
            let cwnd = cc.cwnd
            cc.handleAck(ack(6000, flight: cwnd - 1))
            #expect(cc.cwnd == cwnd)
            #expect(cc.partialBytesAcked == cwnd)
        }

        @Test func partialBytesAckedResetWhenAllDataAcked() {
            var cc = NewRenoController(mtu: mtu, initialSSThresh: 4000)
            cc.handleAck(ack(1000, flight: cc.cwnd, drained: true))
            #expect(cc.partialBytesAcked == 0)
        }

        @Test func fastRetransmitHalvesWindowOncePerRecovery() {
            var cc = NewRenoController(mtu: mtu)
            cc.window.cwnd = 20 * mtu
            let r1 = cc.handleFastRetransmit(highestOutstandingTSN: TSN(50))
            #expect(r1)
            #expect(cc.cwnd == 10 * mtu)
            #expect(cc.ssthresh == 10 * mtu)
            #expect(cc.isInFastRecovery)
            let r2 = cc.handleFastRetransmit(highestOutstandingTSN: TSN(60))
            #expect(!r2)
            #expect(cc.cwnd == 10 * mtu)
        }

        @Test func fastRecoveryEndsAtExitPointAndBlocksGrowthUntilThen() {
            var cc = NewRenoController(mtu: mtu)
            cc.window.cwnd = 20 * mtu
            cc.handleFastRetransmit(highestOutstandingTSN: TSN(50))
            cc.handleAck(ack(mtu, flight: cc.cwnd, point: 49))
            #expect(cc.isInFastRecovery)
            #expect(cc.cwnd == 10 * mtu)
            #expect(cc.partialBytesAcked == 0)
            cc.handleAck(ack(mtu, flight: cc.cwnd, point: 50))
            #expect(!cc.isInFastRecovery)
        }

        @Test func fastRecoveryExitPointComparesAcrossTSNWrap() {
            var cc = NewRenoController(mtu: mtu)
            cc.handleFastRetransmit(highestOutstandingTSN: TSN(2))
            cc.handleAck(ack(mtu, flight: cc.cwnd, point: UInt32.max))
            #expect(cc.isInFastRecovery)
            cc.handleAck(ack(mtu, flight: cc.cwnd, point: 3))
            #expect(!cc.isInFastRecovery)
        }

        @Test func t3ExpiryResetsCwndToOneMTU() {
            var cc = NewRenoController(mtu: mtu)
            cc.window.cwnd = 20 * mtu
            cc.handleRetransmissionTimeout()
            #expect(cc.cwnd == mtu)
            #expect(cc.ssthresh == 10 * mtu)
            cc.handleRetransmissionTimeout()
            #expect(cc.ssthresh == 4 * mtu)
        }

        @Test func idleWindowHalvesPerRTOButNotBelowFourMTU() {
            var cc = NewRenoController(mtu: mtu)
            cc.window.cwnd = 32 * mtu
            cc.handleIdle(idleFor: .milliseconds(150), rto: .milliseconds(100))
            #expect(cc.cwnd == 16 * mtu)
            cc.handleIdle(idleFor: .milliseconds(99), rto: .milliseconds(100))
            #expect(cc.cwnd == 16 * mtu)
            cc.handleIdle(idleFor: .seconds(10), rto: .milliseconds(100))
            #expect(cc.cwnd == 4 * mtu)
        }

        @Test func cwndGatesNewDataWithOneMTUOfSlack() {
            let cc = NewRenoController(mtu: mtu)
            #expect(cc.mayTransmit(flightSize: cc.cwnd))
            #expect(!cc.mayTransmit(flightSize: cc.cwnd + mtu - 1))
        }

        @Test func maxBurstLimitsSendAllowance() {
            var cc = NewRenoController(mtu: mtu)
            cc.window.cwnd = 100 * mtu
            #expect(cc.sendAllowance(flightSize: 10 * mtu) == 4 * mtu)
            #expect(cc.sendAllowance(flightSize: 98 * mtu, maxBurst: 4) == 3 * mtu - 1)
            #expect(cc.sendAllowance(flightSize: 200 * mtu) == 0)
        }

        @Test func liaAlphaIsOneOverNForEqualPaths() {
            let alpha = LIAController.alpha([(10_000, .milliseconds(50)), (10_000, .milliseconds(50))])
            #expect(abs(alpha - 0.5) < 1e-9)
        }

        @Test func liaIncreasesLessThanNewRenoWhenCoupled() {
            var lia = LIAController(mtu: mtu, initialSSThresh: 1000)
            let cwnd = lia.cwnd
            var a = ack(cwnd, flight: cwnd)
            a.coupling = Coupling(totalCwnd: 2 * cwnd, alpha: 0.5)
            lia.handleAck(a)
            // min(alpha * cwnd * MTU / total, MTU) = MTU / 4.
            #expect(lia.cwnd == cwnd + mtu / 4)
        }

        @Test func liaNeverExceedsUncoupledIncrease() {
            var lia = LIAController(mtu: mtu, initialSSThresh: 1000)
            let cwnd = lia.cwnd
            var a = ack(cwnd, flight: cwnd)
            a.coupling = Coupling(totalCwnd: cwnd, alpha: 4)
            lia.handleAck(a)
            #expect(lia.cwnd == cwnd + mtu)
        }

        @Test func pathCongestionControlForwardsToTheChosenController() {
            var control = PathCongestionControl(.lia, mtu: mtu)
            control.handleRetransmissionTimeout()
            #expect(control.cwnd == mtu)
            if case .lia = control {} else { Issue.record("controller changed kind") }
        }
    }
}
