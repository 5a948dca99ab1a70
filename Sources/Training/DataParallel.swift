import Cluster
import Foundation
import NN
import Tensors

/// The parts of data-parallel training that talk across processes (`Distributed`), for a loop
/// whose every rank holds the whole model and computes gradients on its share of each batch:
///
/// - rank 0's initial weights go to every rank;
/// - gradients are averaged across ranks: as the backward pass finishes each parameter's
///   gradient (`Tensor.backward(leafReady:)`), it is copied into one flat buffer, and each
///   bucket of about `bucketFloats` floats starts its all-reduce at once, so communication runs
///   while the backward pass goes on; the last bucket goes when backward ends;
/// - with a sharded optimizer (ZeRO stage 1) each rank updates only its slice of the parameters
///   (laid end to end in the optimizer's order) and the slices are then gathered on every rank;
///   the moments are gathered on rank 0 for checkpoints.
public final class DataParallel {
    public let parameters: [Tensor]
    public let total: Int
    public let bucketFloats: Int
    private let index: [ObjectIdentifier: Int]
    /// Gradients in the order they became final: (total).
    private let staging: Tensor
    private var placed: [(parameter: Int, at: Int)] = []
    private var isPlaced: [Bool]
    private var cursor = 0, bucketStart = 0
    private var pending: [Distributed.PendingSum] = []
    /// Seconds this rank spent waiting for all-reduces to finish after backward, last step.
    public private(set) var waitSeconds = 0.0

    public init(parameters: [Tensor], bucketFloats: Int = 1 << 20) {
        self.parameters = parameters
        total = parameters.reduce(0) { $0 + $1.count }
        self.bucketFloats = bucketFloats
        var idx: [ObjectIdentifier: Int] = [:]
        for (i, p) in parameters.enumerated() { idx[ObjectIdentifier(p)] = i }
        index = idx
        staging = Tensor(zeros: [Distributed.isParallel ? total : 0])
        isPlaced = Array(repeating: false, count: parameters.count)
    }

    /// The element range of the parameters (end to end) that `rank` of `size` owns.
    public static func shard(total: Int, rank: Int = Distributed.rank, size: Int = Distributed.size) -> Range<Int> {
        (total * rank / size)..<(total * (rank + 1) / size)
    }

    /// Every rank takes rank 0's values of the parameters.
    public func broadcastParameters() {
        for p in parameters { Distributed.broadcast(p.data, count: p.count) }
    }

    /// For `backward(leafReady:)`: one parameter's gradient is final.
    public func gradientReady(_ p: Tensor) {
        guard Distributed.isParallel, let i = index[ObjectIdentifier(p)], !isPlaced[i], let g = p.grad else { return }
        isPlaced[i] = true
        (staging.data + cursor).update(from: g.data, count: g.count)
        placed.append((i, cursor))
        cursor += g.count
        if cursor - bucketStart >= bucketFloats { startBucket() }
        for s in pending { _ = s.test() }                   // lets MPI move the earlier buckets along
    }

    private func startBucket() {
        guard cursor > bucketStart else { return }
        pending.append(Distributed.startAllReduceSum(staging.data + bucketStart, count: cursor - bucketStart))
        bucketStart = cursor
    }

    /// After the backward pass: the gradients the hook did not see (in parameter order), the last
    /// bucket, then every gradient becomes its mean over the ranks.
    public func averageGradients() {
        guard Distributed.isParallel else { return }
        for p in parameters { gradientReady(p) }
        startBucket()
        let t0 = Date()
        for s in pending { s.wait() }
        waitSeconds = Date().timeIntervalSince(t0)
        let scale = 1 / Float(Distributed.size)
        for (i, at) in placed {
            let g = parameters[i].grad!.data, s = staging.data + at
            for k in 0..<parameters[i].count { g[k] = s[k] * scale }
        }
        placed = []; pending = []; cursor = 0; bucketStart = 0
        isPlaced = Array(repeating: false, count: parameters.count)
    }

    /// After a sharded optimizer step: each rank's updated slice of the parameters, on every rank.
    public func gatherParameters() {
        guard Distributed.isParallel else { return }
        let flat = staging.data
        var at = 0
        for p in parameters { (flat + at).update(from: p.data, count: p.count); at += p.count }
        let (counts, offsets) = parts()
        Distributed.allGather(flat, counts: counts, offsets: offsets)
        at = 0
        for p in parameters { p.data.update(from: flat + at, count: p.count); at += p.count }
    }

    /// A sharded optimizer's moments, whole, on rank 0 (nil on the others); every rank calls it.
    /// Each moment is gathered through the staging buffer, so only rank 0 holds whole copies.
    public func gatherMoments(_ optimizer: AdamW) -> (m: [Tensor], v: [Tensor])? {
        guard optimizer.owned != nil else { return (optimizer.m, optimizer.v) }
        let (counts, offsets) = parts()
        let flat = staging.data
        var out: [[Tensor]] = []
        for moments in [optimizer.m, optimizer.v] {
            var at = 0
            for (i, p) in parameters.enumerated() {
                let r = optimizer.ownedElements[i]
                (flat + at + r.lowerBound).update(from: moments[i].data, count: r.count)
                at += p.count
            }
            Distributed.gather(flat, counts: counts, offsets: offsets)
            guard Distributed.isMain else { continue }
            at = 0
            out.append(parameters.map { p in
                let t = Tensor(zeros: p.shape)
                t.data.update(from: flat + at, count: p.count)
                at += p.count
                return t
            })
        }
        return Distributed.isMain ? (out[0], out[1]) : nil
    }

    private func parts() -> (counts: [Int], offsets: [Int]) {
        let shards = (0..<Distributed.size).map { Self.shard(total: total, rank: $0) }
        return (shards.map(\.count), shards.map(\.lowerBound))
    }
}
