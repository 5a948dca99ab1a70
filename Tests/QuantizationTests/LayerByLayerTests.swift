import Foundation
import Testing
import Inference
import Models
import NN
import Tensors

/// Running a model one layer at a time (as calibration does) computes what its forward pass does.
@Suite struct LayerByLayer {
    @Test func layersOneAtATimeGiveTheModelsLogits() throws {
        let loaded = try LoadedModel.load(fixtures.appendingPathComponent("llama-tiny").path)
        let model = loaded.model as! DecoderModel
        model.eval()
        let ids: [Int32] = [5, 9, 33, 2, 7, 100, 41, 8, 3, 11, 12, 13]
        let want = try model.logits(ids + ids, batch: 2, length: ids.count).scalars
        let got = withNoGrad { () -> [Float] in
            var x = model.embedded(ids + ids, batch: 2, length: ids.count)
            for layer in model.layers { x = layer(x) }
            let h = model.norm(x.reshaped(2 * ids.count, model.spec.embedding))
            return (model.lmHead.map { $0(h) } ?? model.embedTokens.project(h)).scalars
        }
        let diff = zip(want, got).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-5, "max |logit difference| \(diff)")
    }
}
