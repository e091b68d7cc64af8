import SintraCrypto
import Testing

@testable import SintraReplica

@Suite struct KeyValueStoreTests {
    private func run(_ store: inout KeyValueStore, _ operation: KeyValueStore.Operation) throws -> KeyValueStore.Result {
        try KeyValueStore.Result(encoded: store.apply(operation.encoded))
    }

    @Test func operations() throws {
        var store = KeyValueStore()
        let a = Array("a".utf8), b = Array("b".utf8), c = Array("c".utf8)
        #expect(try run(&store, .get(key: a)) == .notFound)
        #expect(try run(&store, .put(key: b, value: [2])) == .ok)
        #expect(try run(&store, .put(key: a, value: [1])) == .ok)
        #expect(try run(&store, .put(key: c, value: [3])) == .ok)
        #expect(try run(&store, .get(key: a)) == .value([1]))
        #expect(try run(&store, .compareAndSwap(key: a, expected: [9], new: [5])) == .conflict(current: [1]))
        #expect(try run(&store, .compareAndSwap(key: a, expected: [1], new: [5])) == .ok)
        #expect(try run(&store, .compareAndSwap(key: Array("d".utf8), expected: nil, new: [4])) == .ok)
        #expect(try run(&store, .compareAndSwap(key: Array("d".utf8), expected: nil, new: [4])) == .conflict(current: [4]))
        #expect(try run(&store, .scan(from: a, to: c, limit: 10)) == .entries([(a, [5]), (b, [2])]))
        #expect(try run(&store, .scan(from: [], to: [0xff], limit: 2)) == .entries([(a, [5]), (b, [2])]))
        #expect(try run(&store, .delete(key: b)) == .ok)
        #expect(try run(&store, .delete(key: b)) == .notFound)
        #expect(store.count == 3)
    }

    /// A scan over large values stops at `scanBytesMax`, so its reply fits one client record (1 MiB + 256
    /// bytes, `ClientPorts.recordBytesMax`); scanning on from after the last key returns the rest.
    @Test func scanResultsFitOneClientRecord() throws {
        var store = KeyValueStore()
        let value = [UInt8](repeating: 7, count: KeyValueStore.valueBytesMax)
        for index in 0..<40 {
            #expect(try run(&store, .put(key: [UInt8(index)], value: value)) == .ok)
        }
        var seen = 0
        var from: [UInt8] = []
        var scans = 0
        while seen < 40 {
            let result = store.apply(KeyValueStore.Operation.scan(from: from, to: [0xff], limit: 1000).encoded)
            let reply = ClientReply(client: [UInt8](repeating: 1, count: 16), sequence: 1, result: result)
            #expect(1 + reply.encoded.count <= (1 << 20) + 256)
            guard case .entries(let entries) = try KeyValueStore.Result(encoded: result), let last = entries.last else {
                Issue.record("a scan with entries left returned none")
                return
            }
            #expect(entries.first?.key == [UInt8(seen)])
            seen += entries.count
            from = last.key + [0]
            scans += 1
        }
        #expect(seen == 40)
        #expect(scans == 3)
    }

    @Test func malformedOperationsGetAnErrorReply() throws {
        var store = KeyValueStore()
        var random = SplitMix(seed: 4)
        for _ in 0..<2000 {
            let bytes = (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = try KeyValueStore.Result(encoded: store.apply(bytes))
        }
        let tooLong = KeyValueStore.Operation.put(key: [UInt8](repeating: 1, count: KeyValueStore.keyBytesMax + 1), value: [])
        guard case .invalid = try KeyValueStore.Result(encoded: store.apply(tooLong.encoded)) else {
            Issue.record("an oversized key was accepted")
            return
        }
    }

    /// Replicas that apply the same operations have equal digests and snapshots; the snapshot restores.
    @Test func deterministicStateAndSnapshots() throws {
        var first = KeyValueStore(), second = KeyValueStore()
        var random = SplitMix(seed: 8)
        for _ in 0..<500 {
            let key = [UInt8(random.next() % 50)]
            let operation: KeyValueStore.Operation =
                random.next() % 3 == 0 ? .delete(key: key) : .put(key: key, value: [UInt8(random.next() % 256)])
            _ = first.apply(operation.encoded)
            _ = second.apply(operation.encoded)
        }
        #expect(first.digest == second.digest)
        let restored = try KeyValueStore(snapshot: first.snapshot())
        #expect(restored.digest == first.digest)
        _ = second.apply(KeyValueStore.Operation.put(key: [200], value: []).encoded)
        #expect(first.digest != second.digest)
        #expect(throws: DecodingError.self) { try KeyValueStore(snapshot: [0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 5]) }
    }

    /// Many keys across many chunks (`KeyValueStore.chunkCountMax`): every operation, scan and snapshot
    /// agrees with a plain sorted reference, through chunk splits and chunks emptied by deletes, and a
    /// snapshot restores the same state.
    /// The store's byte comparison is the order of `lexicographicallyPrecedes`: unsigned bytes, a proper prefix
    /// first, empty keys included.
    @Test func keyOrderIsLexicographicOnUnsignedBytes() {
        let keys: [[UInt8]] = [[], [0], [0, 0], [0, 1], [1], [0x7f], [0x80], [0x80, 0], [0xff], [0xff, 0xff], [1, 0xff, 3]]
        for a in keys {
            for b in keys {
                #expect(KeyValueStore.precedes(a, b) == a.lexicographicallyPrecedes(b), "\(a) \(b)")
            }
        }
    }

    /// The sized, in-place snapshot writer gives `snapshot()`'s bytes, and its size is known beforehand; an
    /// executor's snapshot embeds the machine's unchanged and restores.
    @Test func snapshotsAreWrittenInPlaceAndSizedBeforehand() throws {
        var store = KeyValueStore()
        #expect(store.snapshotByteCount == store.snapshot().count)
        for index in 0..<2000 {
            _ = try run(&store, .put(key: Array("k\(index * 7919 % 2000)".utf8), value: [UInt8](repeating: 1, count: index % 50)))
        }
        let bytes = store.snapshot()
        #expect(store.snapshotByteCount == bytes.count)
        var writer = ByteWriter()
        writer.write(UInt8(9))
        store.writeSnapshot(into: &writer)
        #expect(writer.bytes == [9] + bytes)
        let restored = try KeyValueStore(snapshot: bytes)
        #expect(restored.snapshot() == bytes)
        var executor = RequestExecutor(machine: store)
        let key = ClientKey.generate()
        _ = executor.execute(key.request(clusterIdentifier: [1], sequence: 1, operation: KeyValueStore.Operation.get(key: Array("k3".utf8)).encoded))
        let snapshot = executor.snapshot()
        #expect(Array(snapshot.suffix(bytes.count)) == bytes)
        #expect(try RequestExecutor<KeyValueStore>(snapshot: snapshot).snapshot() == snapshot)
    }

    @Test func manyKeysAgreeWithASortedReference() throws {
        var store = KeyValueStore()
        var reference = [[UInt8]: [UInt8]]()
        var random = SplitMix(seed: 21)
        func key(_ number: UInt64) -> [UInt8] { Array("k\(number % 6000)".utf8) }
        for step in 0..<30_000 {
            let k = key(random.next())
            let roll = random.next() % 10
            if roll < 6 {
                let value = [UInt8(step % 256), UInt8(step / 256 % 256)]
                #expect(try run(&store, .put(key: k, value: value)) == .ok)
                reference[k] = value
            } else if roll < 9 || step > 25_000 {
                #expect(try run(&store, .delete(key: k)) == (reference.removeValue(forKey: k) == nil ? .notFound : .ok))
            } else {
                #expect(try run(&store, .get(key: k)) == (reference[k].map { .value($0) } ?? .notFound))
            }
            if step % 1000 == 999 { #expect(store.isConsistent, "step \(step)") }
        }
        #expect(store.isConsistent)
        #expect(try KeyValueStore(snapshot: store.snapshot()).isConsistent)
        #expect(store.count == reference.count)
        let sorted = reference.keys.sorted { $0.lexicographicallyPrecedes($1) }
        // Scans from anywhere, across chunk boundaries, agree with the reference.
        for _ in 0..<50 {
            let from = key(random.next()), to = key(random.next())
            let expected = sorted.filter { !$0.lexicographicallyPrecedes(from) && $0.lexicographicallyPrecedes(to) }
                .prefix(700).map { ($0, reference[$0]!) }
            guard case .entries(let entries) = try run(&store, .scan(from: from, to: to, limit: 700)) else {
                Issue.record("a scan returns entries")
                continue
            }
            #expect(entries.map(\.key) == expected.map(\.0))
            #expect(entries.map(\.value) == expected.map(\.1))
        }
        var writer = ByteWriter()
        writer.write(UInt64(sorted.count))
        for k in sorted {
            writer.writeVariable(k)
            writer.writeVariable(reference[k]!)
        }
        #expect(store.snapshot() == writer.bytes, "the snapshot lists every entry in key order")
        let restored = try KeyValueStore(snapshot: store.snapshot())
        #expect(restored.digest == store.digest && restored.count == store.count)
        // Deleting everything leaves an empty store equal to a new one.
        for k in sorted { _ = store.apply(KeyValueStore.Operation.delete(key: k).encoded) }
        #expect(store.count == 0 && store.digest == KeyValueStore().digest)
    }

    /// The searches order keys by their 16-byte prefixes first (`KeyValueStore.KeyPrefix`) and by their
    /// bytes where those tie: keys that share 16 bytes or more, differ only by trailing zero bytes, are
    /// empty or hold 0xff, still sort as bytes, against a sorted reference.
    @Test func keysThatTieOnTheirPrefixesSortByTheirBytes() throws {
        var random = SplitMix(seed: 77)
        let stems: [[UInt8]] = [[], [0], [0, 0], Array("client-12345-678".utf8), Array("client-12345-67".utf8),
            [UInt8](repeating: 0xff, count: 16), [UInt8](repeating: 0, count: 16), Array("a".utf8)]
        func key() -> [UInt8] {
            let stem = stems[Int(random.next() % UInt64(stems.count))]
            let tail = (0..<Int(random.next() % 6)).map { _ in [0, 1, 0x7f, 0x80, 0xff][Int(random.next() % 5)] as UInt8 }
            return stem + tail
        }
        // Soundness of the prefix order, pair by pair.
        for _ in 0..<20_000 {
            let a = key(), b = key()
            let order = KeyValueStore.KeyPrefix(a).order(KeyValueStore.KeyPrefix(b))
            if order < 0 { #expect(a.lexicographicallyPrecedes(b), "\(a) \(b)") }
            if order > 0 { #expect(b.lexicographicallyPrecedes(a), "\(a) \(b)") }
        }
        var store = KeyValueStore()
        var reference = [[UInt8]: [UInt8]]()
        for step in 0..<6_000 {
            let k = key()
            if random.next() % 4 == 0 {
                #expect(try run(&store, .delete(key: k)) == (reference.removeValue(forKey: k) == nil ? .notFound : .ok))
            } else {
                let value = [UInt8(step % 256)]
                #expect(try run(&store, .put(key: k, value: value)) == .ok)
                reference[k] = value
            }
            let probe = key()
            #expect(try run(&store, .get(key: probe)) == (reference[probe].map { .value($0) } ?? .notFound))
        }
        #expect(store.isConsistent)
        let sorted = reference.keys.sorted { $0.lexicographicallyPrecedes($1) }
        for k in sorted { #expect(try run(&store, .get(key: k)) == .value(reference[k]!)) }
        guard case .entries(let entries) = try run(&store, .scan(from: [], to: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], limit: 1000)) else {
            Issue.record("a scan returns entries")
            return
        }
        #expect(entries.map(\.key) == Array(sorted.prefix(1000)))
        let restored = try KeyValueStore(snapshot: store.snapshot())
        #expect(restored.isConsistent && restored.digest == store.digest)
    }

    @Test func executorRunsEachRequestOnce() throws {
        var executor = RequestExecutor(machine: KeyValueStore())
        let key = try ClientKey(seed: [UInt8](repeating: 7, count: 32))
        let client = key.client
        let cluster = [UInt8](repeating: 1, count: 16)
        let put = key.request(
            clusterIdentifier: cluster, sequence: 1, operation: KeyValueStore.Operation.put(key: [1], value: [1]).encoded)
        guard case .executed = executor.execute(put) else { Issue.record("first execution"); return }
        #expect(
            executor.execute(put)
                == .duplicate(ClientReply(client: client, sequence: 1, result: KeyValueStore.Result.ok.encoded)))
        let cas = key.request(
            clusterIdentifier: cluster, sequence: 2,
            operation: KeyValueStore.Operation.compareAndSwap(key: [1], expected: [1], new: [2]).encoded)
        #expect(
            executor.execute(cas)
                == .executed(ClientReply(client: client, sequence: 2, result: KeyValueStore.Result.ok.encoded)))
        #expect(executor.execute(put) == .stale)
        #expect(executor.executedCount == 2)
        #expect(try ClientRequest(encoded: cas.encoded) == cas)
    }

    @Test func clientAcceptsOnlyTPlusOneMatchingReplies() {
        var collector = ReplyCollector(faulty: 2, sequence: 5)
        let client = [UInt8](repeating: 1, count: 16)
        let good = ClientReply(client: client, sequence: 5, result: [1])
        let bad = ClientReply(client: client, sequence: 5, result: [6])
        #expect(collector.add(bad, from: 4) == nil)
        #expect(collector.add(bad, from: 5) == nil)
        #expect(collector.add(good, from: 1) == nil)
        #expect(collector.add(good, from: 1) == nil, "a replica counts once")
        #expect(collector.add(ClientReply(client: client, sequence: 4, result: [1]), from: 2) == nil, "other sequence")
        #expect(collector.add(good, from: 2) == nil)
        #expect(collector.add(good, from: 3) == [1])
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
