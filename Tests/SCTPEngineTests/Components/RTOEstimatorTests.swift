import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct RTOEstimatorTests {
        let lowMin = RTOEstimator.Configuration(initial: .seconds(1), min: .milliseconds(10), max: .seconds(60))

        @Test func initialRTOIsOneSecond() {
            let rto = RTOEstimator()
            #expect(rto.rto == .seconds(1))
            #expect(rto.srtt == nil)
        }

        @Test func firstMeasurementSetsSRTTAndHalfRTTVAR() {
            var rto = RTOEstimator(configuration: lowMin)
            rto.handleMeasurement(.milliseconds(100))
            #expect(rto.srtt == .milliseconds(100))
            #expect(rto.rttvar == .milliseconds(50))
            #expect(rto.rto == .milliseconds(300))
        }

        @Test func laterMeasurementsUseAlphaOneEighthAndBetaOneQuarter() {
            var rto = RTOEstimator(configuration: lowMin)
            rto.handleMeasurement(.milliseconds(100))
            rto.handleMeasurement(.milliseconds(200))
            // RTTVAR = 3/4 * 50 + 1/4 * 100 = 62.5 ms; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5 ms.
            #expect(rto.rttvar == .microseconds(62_500))
            #expect(rto.srtt == .microseconds(112_500))
            #expect(rto.rto == .microseconds(112_500 + 250_000))
        }

        @Test func rtoClampedToRTOMin() {
            var rto = RTOEstimator()
            rto.handleMeasurement(.milliseconds(20))
            #expect(rto.rto == .seconds(1))
        }

        @Test func clockGranularityBoundsTheVarianceTerm() {
            var rto = RTOEstimator(
                configuration: .init(
                    initial: .seconds(1), min: .zero, max: .seconds(60),
                    granularity: .milliseconds(5)))
            for _ in 0..<200 { rto.handleMeasurement(.milliseconds(40)) }
            #expect(rto.rto == .milliseconds(45))
        }

        @Test func rtoBackoffDoublesUpToMax() {
            var rto = RTOEstimator()
            var seen: [SCTPDuration] = []
            for _ in 0..<8 {
                rto.backOff()
                seen.append(rto.rto)
            }
            #expect(seen == [2, 4, 8, 16, 32, 60, 60, 60].map { SCTPDuration.seconds($0) })
        }

        @Test func newMeasurementUndoesBackoff() {
            var rto = RTOEstimator(configuration: lowMin)
            rto.handleMeasurement(.milliseconds(100))
            rto.backOff()
            rto.backOff()
            #expect(rto.rto == .milliseconds(1200))
            rto.handleMeasurement(.milliseconds(100))
            #expect(rto.rto < .milliseconds(300))
        }
    }
}
