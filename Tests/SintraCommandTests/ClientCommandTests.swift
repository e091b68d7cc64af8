import SintraReplica
import Testing

@testable import sintra

/// `sintra client` argument parsing: each operation and its arity.
@Suite struct ClientCommandTests {
    @Test func operationsParseWithTheirArguments() throws {
        func operation(_ words: [String]) throws -> KeyValueStore.Operation {
            try ClientCommand.parse(["--config", "c.json"] + words).parseOperation()
        }
        #expect(try operation(["put", "k", "v"]) == .put(key: Array("k".utf8), value: Array("v".utf8)))
        #expect(try operation(["get", "k"]) == .get(key: Array("k".utf8)))
        #expect(try operation(["delete", "k"]) == .delete(key: Array("k".utf8)))
        #expect(
            try operation(["cas", "k", "-", "n"]) == .compareAndSwap(key: Array("k".utf8), expected: nil, new: Array("n".utf8)))
        #expect(
            try operation(["scan", "a", "z"])
                == .scan(from: Array("a".utf8), to: Array("z".utf8), limit: KeyValueStore.scanCountMax))
    }

    @Test func wrongAritiesAndUnknownOperationsAreRefused() {
        for words in [["put", "k"], ["get"], ["cas", "k", "v"], ["rename", "a", "b"], []] {
            #expect(throws: (any Error).self) { try ClientCommand.parse(["--config", "c.json"] + words) }
        }
    }
}
