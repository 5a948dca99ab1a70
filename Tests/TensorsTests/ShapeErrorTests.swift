import Testing
import Tensors

/// Shape errors name the op and both shapes. The validators throw (for code that handles user
/// input); the ops themselves stop the program with the same message, proved with exit tests.
@Suite struct ShapeErrors {
    @Test func matmulValidatorNamesOpAndShapes() {
        #expect(throws: ShapeError(op: "matmul", message: "(4, 16, 128) vs (4, 12, 128)")) {
            try Shape.matmul([4, 16, 128], [4, 12, 128])
        }
        #expect(throws: Never.self) { try Shape.matmul([4, 16, 128], [4, 12, 128], transposeB: true) }
    }

    @Test func broadcastValidatorNamesOpAndShapes() throws {
        #expect(throws: ShapeError(op: "add", message: "(2, 3) vs (4,)")) { try Shape.broadcast([2, 3], [4], op: "add") }
        #expect(try Shape.broadcast([2, 1, 4], [3, 1], op: "add") == [2, 3, 4])
    }

    @Test func reshapeValidator() throws {
        #expect(throws: ShapeError(op: "reshape", message: "(2, 3) vs (4, -1)")) { try Shape.resolve([4, -1], count: 6, from: [2, 3]) }
        #expect(try Shape.resolve([3, -1], count: 6, from: [2, 3]) == [3, 2])
    }

    @Test func errorDescriptionFormat() {
        #expect(ShapeError(op: "matmul", [4, 16, 128], [4, 12, 128]).description == "matmul: (4, 16, 128) vs (4, 12, 128)")
        #expect(Shape.describe([]) == "()" && Shape.describe([5]) == "(5,)")
    }

    @Test func mismatchedMatmulStopsWithTheMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let a = Tensor.zeros([4, 16, 128]), b = Tensor.zeros([4, 12, 128])
            _ = matmul(a, b)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("matmul: (4, 16, 128) vs (4, 12, 128)"))
    }

    @Test func mismatchedAddStopsWithTheMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([4])
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("add: (2, 3) vs (4,)"))
    }

    @Test func badEmbeddingIdStopsWithTheId() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([5, 2]).gatherRows([1, 7])
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("embedding: id 7 at position 1 outside the table's 5 rows"))
    }
}
