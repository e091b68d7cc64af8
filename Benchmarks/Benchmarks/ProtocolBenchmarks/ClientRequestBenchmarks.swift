import Benchmark
import SintraCrypto
import SintraReplica

/// The cost client authentication adds per request: signing at the client, verifying at a replica (the
/// submission path, which also decodes the public key), and authenticating an ordered request that this
/// replica verified before (a digest lookup) or never saw (a key-cache hit and a signature verification).
func registerClientRequestBenchmarks() {
    let cluster = [UInt8](repeating: 3, count: 16)
    let key = (try? ClientKey(seed: [UInt8](repeating: 5, count: 32)))!
    let operation = [UInt8](repeating: 0x61, count: 64)
    let requests = (1...1024).map {
        key.request(clusterIdentifier: cluster, sequence: UInt64($0), operation: operation)
    }
    let encoded = requests.map(\.encoded)

    Benchmark("Client request: sign (64-byte operation)") { benchmark in
        var sequence: UInt64 = 0
        for _ in benchmark.scaledIterations {
            sequence += 1
            blackHole(key.request(clusterIdentifier: cluster, sequence: sequence, operation: operation))
        }
    }
    Benchmark("Client request: verify at submission (key decoded each time)") { benchmark in
        var index = 0
        for _ in benchmark.scaledIterations {
            blackHole(try? requests[index % requests.count].verify(clusterIdentifier: cluster))
            index += 1
        }
    }
    Benchmark("Client request: authenticate at execution, not verified before (key cached)") { benchmark in
        var authenticator = RequestAuthenticator(clusterIdentifier: cluster)
        var index = 0
        for _ in benchmark.scaledIterations {
            // A fresh authenticator every 1024 requests, so every request is verified once.
            if index % encoded.count == 0 { authenticator = RequestAuthenticator(clusterIdentifier: cluster) }
            blackHole(authenticator.authenticate(encoded[index % encoded.count]))
            index += 1
        }
    }
    Benchmark("Client request: authenticate at execution, verified at submission") { benchmark in
        var authenticator = RequestAuthenticator(clusterIdentifier: cluster)
        for bytes in encoded { authenticator.remember(verified: bytes) }
        var index = 0
        for _ in benchmark.scaledIterations {
            blackHole(authenticator.authenticate(encoded[index % encoded.count]))
            index += 1
        }
    }
}
