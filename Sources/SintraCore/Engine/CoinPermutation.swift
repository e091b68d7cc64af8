import Crypto
import SintraCrypto

/// Turns a threshold-coin value into a uniformly random permutation of the members 1…n (for the order
/// in which validated agreement tries candidates, CKPS01).
///
/// Fisher–Yates driven by a SHA-256 counter-mode stream seeded with the coin, and rejection sampling for
/// each index so that no index is biased by a modulo reduction (PROTOCOLS.md §1).
public enum CoinPermutation {
    public static func permutation(of count: Int, coin: ThresholdCoin.Value) -> [Int] {
        permutation(of: count, seed: coin.bytes)
    }

    /// The permutation for raw seed bytes (the coin value's bytes).
    public static func permutation(of count: Int, seed: [UInt8]) -> [Int] {
        precondition(count >= 1 && count <= 1 << 16, "permutation size out of range")
        var stream = Stream(seed: seed)
        var members = Array(1...count)
        for index in stride(from: count - 1, to: 0, by: -1) {
            let chosen = stream.uniform(below: UInt32(index + 1))
            members.swapAt(index, Int(chosen))
        }
        return members
    }

    /// SHA-256(seed ‖ counter) blocks, consumed four bytes at a time.
    private struct Stream {
        let seed: [UInt8]
        var counter: UInt64 = 0
        var buffer: [UInt8] = []

        init(seed: [UInt8]) {
            self.seed = seed
        }

        mutating func nextWord() -> UInt32 {
            if buffer.count < 4 {
                var writer = ByteWriter()
                writer.writeVariable(Array("sintra-v1/coin-permutation".utf8))
                writer.writeFixed(seed)
                writer.write(counter)
                counter += 1
                buffer += Array(SHA256.hash(data: writer.bytes))
            }
            let word = buffer.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            buffer.removeFirst(4)
            return word
        }

        /// A uniform value in [0, bound): reject words from the incomplete top block.
        mutating func uniform(below bound: UInt32) -> UInt32 {
            let limit = UInt32.max - UInt32.max % bound
            while true {
                let word = nextWord()
                if word < limit { return word % bound }
            }
        }
    }
}
