import Foundation

/// Accuracy, per-class precision / recall / F1 and the confusion matrix (rows: true label,
/// columns: predicted), as `llm evaluate --json` prints them.
public struct ClassificationReport: Codable, Sendable {
    public struct PerClass: Codable, Sendable {
        public var precision: Double
        public var recall: Double
        public var f1: Double
        public var support: Int
    }

    public var accuracy: Double
    public var n: Int
    public var labels: [String]
    public var perClass: [String: PerClass]
    public var confusion: [[Int]]
    public var loss: Double

    enum CodingKeys: String, CodingKey { case accuracy, n, labels, confusion, loss, perClass = "per_class" }

    /// From true and predicted label indices, and the summed cross-entropy.
    public init(labels: [String], truth: [Int], predicted: [Int], lossSum: Double) {
        let k = labels.count
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for (t, p) in zip(truth, predicted) { confusion[t][p] += 1 }
        self.labels = labels
        self.confusion = confusion
        n = truth.count
        accuracy = n == 0 ? 0 : Double(zip(truth, predicted).filter { $0 == $1 }.count) / Double(n)
        loss = n == 0 ? 0 : lossSum / Double(n)
        var per: [String: PerClass] = [:]
        for (i, label) in labels.enumerated() {
            let tp = Double(confusion[i][i])
            let predictedI = Double((0..<k).reduce(0) { $0 + confusion[$1][i] })
            let actualI = confusion[i].reduce(0, +)
            let precision = predictedI == 0 ? 0 : tp / predictedI
            let recall = actualI == 0 ? 0 : tp / Double(actualI)
            let f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
            per[label] = PerClass(precision: precision, recall: recall, f1: f1, support: actualI)
        }
        perClass = per
    }

    /// A plain-text table.
    public var table: String {
        var s = String(format: "accuracy %.2f%% (%d examples), loss %.4f\n", accuracy * 100, n, loss)
        let width = max(8, (labels.map(\.count).max() ?? 0) + 2)
        func pad(_ t: String) -> String { t.count >= width ? t : t + String(repeating: " ", count: width - t.count) }
        s += pad("label") + "precision  recall     f1  support\n"
        for l in labels {
            let c = perClass[l]!
            s += pad(l) + String(format: "%9.4f %7.4f %6.4f %8d\n", c.precision, c.recall, c.f1, c.support)
        }
        s += "confusion (rows: true, columns: predicted; order " + labels.joined(separator: ", ") + ")\n"
        for row in confusion { s += "  " + row.map { String(format: "%6d", $0) }.joined() + "\n" }
        return s
    }
}
