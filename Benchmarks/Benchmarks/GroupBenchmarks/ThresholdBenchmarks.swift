import Benchmark
import SintraCrypto

/// The place for the threshold coin (share, verify share, combine) and TDH2 (encrypt, decryption share,
/// verify share, combine) benchmarks, registered after the group benchmarks so that one run reports both.
/// Parameterise them over (n, t) as the tests are, e.g. (4, 1), (16, 5) and (64, 21).
func registerThresholdBenchmarks() {
}
