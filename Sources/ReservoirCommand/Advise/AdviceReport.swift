import Foundation

/// Renders a `PoolSizeAdvice` as a self-contained SVG: throughput and latency against pool size, the measured points,
/// the fitted curve, and the recommended size and the peak marked.
public enum AdviceReport {
    /// The SVG document, with no external references (fonts fall back to the viewer's sans-serif).
    ///
    /// - Parameters:
    ///   - advice: the advice to draw.
    ///   - title: a heading, e.g. the database and query measured.
    /// - Returns: the SVG text.
    public static func svg(_ advice: PoolSizeAdvice, title: String) -> String {
        let width = 960.0
        let panelHeight = 300.0
        let top = 70.0
        let gap = 70.0
        let reasoningLines = advice.reasoning.flatMap { wrap($0, width: 150) }
        let reasoningTop = top + 2 * panelHeight + gap + 70
        let height = reasoningTop + 24 + Double(reasoningLines.count) * 16 + 16
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif">
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="24" y="32" font-size="20" font-weight="bold" fill="#1a1a1a">\(escape(title))</text>
            <text x="24" y="54" font-size="13" fill="#444">\(escape(summary(advice)))</text>

            """
        let sizes = advice.points.map { Double($0.concurrency) }
        let maxSize = max(sizes.max() ?? 1, advice.fittedPeakConcurrency.map { min($0, (sizes.max() ?? 1) * 2) } ?? 0)
        // A quarter of a doubling of margin on each side, so that a marker at size 1 is not drawn on the y axis.
        let xAxis = LogAxis(lower: 0.84, upper: max(2, maxSize) * 1.19)
        let model = advice.fit.model
        let curveSizes = stride(from: 0.0, through: 1.0, by: 1.0 / 200).map { xAxis.value(atFraction: $0) }

        // Throughput panel.
        let throughputMax = max(
            advice.points.map(\.throughput).max() ?? 1,
            curveSizes.map { model.throughput(at: $0) }.max() ?? 1
        ) * 1.1
        var throughputPanel = Panel(
            frame: (x: 90, y: top, width: width - 130, height: panelHeight),
            xAxis: xAxis,
            yUpper: throughputMax,
            yLabel: "throughput (queries/s)",
            xLabel: "pool size (connections)"
        )
        throughputPanel.fittedCurve(curveSizes.map { ($0, model.throughput(at: $0)) }, color: "#1f77b4")
        throughputPanel.points(advice.points.map { (Double($0.concurrency), $0.throughput) }, color: "#1f77b4")
        throughputPanel.marker(at: Double(advice.recommendedTotal), label: markerLabel(advice), color: "#2ca02c")
        let threshold = advice.decision.bestThroughput * advice.rule.throughputFraction
        throughputPanel.threshold(
            at: threshold,
            label: "\(format(advice.rule.throughputFraction * 100)) % of the best",
            color: "#2ca02c"
        )
        if let peak = advice.fittedPeakConcurrency, peak <= xAxis.upper {
            throughputPanel.marker(at: peak, label: "peak ≈ \(format(peak))", color: "#d62728")
        }
        throughputPanel.legend([("measured", "#1f77b4", false), ("USL fit", "#1f77b4", true)])
        out += throughputPanel.render(sizes: advice.points.map(\.concurrency))

        // Latency panel.
        let latencyMax = max(
            advice.points.map(\.latencyP99).max() ?? 0.001,
            curveSizes.map { model.latency(at: $0) }.max() ?? 0.001
        ) * 1000 * 1.1
        var latencyPanel = Panel(
            frame: (x: 90, y: top + panelHeight + gap, width: width - 130, height: panelHeight),
            xAxis: xAxis,
            yUpper: latencyMax,
            yLabel: "latency (ms)",
            xLabel: "pool size (connections)"
        )
        latencyPanel.fittedCurve(curveSizes.map { ($0, model.latency(at: $0) * 1000) }, color: "#9467bd")
        latencyPanel.points(advice.points.map { (Double($0.concurrency), $0.latencyP50 * 1000) }, color: "#9467bd")
        latencyPanel.points(advice.points.map { (Double($0.concurrency), $0.latencyP99 * 1000) }, color: "#ff7f0e")
        latencyPanel.polyline(advice.points.map { (Double($0.concurrency), $0.latencyP99 * 1000) }, color: "#ff7f0e")
        latencyPanel.marker(at: Double(advice.recommendedTotal), label: markerLabel(advice), color: "#2ca02c")
        latencyPanel.threshold(
            at: advice.decision.bestP99 * advice.rule.p99Factor * 1000,
            label: "p99 bound: \(format(advice.rule.p99Factor))× the best",
            color: "#ff7f0e"
        )
        latencyPanel.legend([
            ("p50 measured", "#9467bd", false), ("p99 measured", "#ff7f0e", false), ("mean, USL fit", "#9467bd", true),
        ])
        out += latencyPanel.render(sizes: advice.points.map(\.concurrency))
        out += "<text x=\"24\" y=\"\(Int(reasoningTop))\" font-size=\"14\" font-weight=\"bold\" fill=\"#1a1a1a\">"
            + "Why this size</text>\n"
        for (index, line) in reasoningLines.enumerated() {
            out += "<text x=\"24\" y=\"\(Int(reasoningTop + 22 + Double(index) * 16))\" font-size=\"12\" fill=\"#333\">"
                + "\(escape(line))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    static func summary(_ advice: PoolSizeAdvice) -> String {
        let model = advice.fit.model
        return "σ = \(format(model.contention)), κ = \(format(model.coherency)), λ = "
            + "\(format(model.singleClientThroughput))/s · recommended maximumSize \(advice.recommendedPerInstance) "
            + "per instance × \(advice.budget.instances) = \(advice.recommendedTotal) in total "
            + "(max_connections \(advice.budget.maxConnections), \(advice.budget.reservedConnections) reserved)"
    }

    /// The recommendation marker's label: the total the plot's x axis counts, and its split when there are several
    /// instances.
    static func markerLabel(_ advice: PoolSizeAdvice) -> String {
        guard advice.budget.instances > 1 else { return "recommended \(advice.recommendedTotal)" }
        return "recommended \(advice.recommendedTotal) = \(advice.recommendedPerInstance) × \(advice.budget.instances)"
    }

    /// Splits a sentence into lines of at most `width` characters, at spaces.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ") {
            if !current.isEmpty, current.count + 1 + word.count > width {
                lines.append(current)
                current = ""
            }
            current += current.isEmpty ? String(word) : " " + word
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;")
            .replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// A base-2 logarithmic axis: pool sizes double from one measurement to the next.
struct LogAxis {
    var lower: Double
    var upper: Double

    func fraction(of value: Double) -> Double {
        (log2(max(value, lower)) - log2(lower)) / (log2(upper) - log2(lower))
    }

    func value(atFraction fraction: Double) -> Double {
        exp2(log2(lower) + fraction * (log2(upper) - log2(lower)))
    }
}

/// One chart: a frame, a log x axis, a linear y axis from zero, and SVG elements drawn into it.
struct Panel {
    var frame: (x: Double, y: Double, width: Double, height: Double)
    var xAxis: LogAxis
    var yUpper: Double
    /// Grid spacing: 1, 2 or 5 times a power of ten, so tick labels read as round numbers.
    var yStep: Double
    var yLabel: String
    var xLabel: String
    private var body = ""
    private var legendItems: [(String, String, Bool)] = []

    init(
        frame: (x: Double, y: Double, width: Double, height: Double),
        xAxis: LogAxis,
        yUpper: Double,
        yLabel: String,
        xLabel: String
    ) {
        self.frame = frame
        self.xAxis = xAxis
        let step = Panel.niceStep(for: yUpper > 0 ? yUpper / 4 : 0.25)
        self.yStep = step
        self.yUpper = (max(yUpper, step) / step).rounded(.up) * step
        self.yLabel = yLabel
        self.xLabel = xLabel
    }

    func x(_ value: Double) -> Double { frame.x + xAxis.fraction(of: value) * frame.width }
    func y(_ value: Double) -> Double { frame.y + frame.height - min(value / yUpper, 1.05) * frame.height }

    /// A fitted curve: dashed, so it never passes for measurements.
    mutating func fittedCurve(_ points: [(Double, Double)], color: String) {
        let path = points.map { "\(rounded(x($0.0))),\(rounded(y($0.1)))" }.joined(separator: " ")
        body += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\""
            + " stroke-dasharray=\"6 4\"/>\n"
    }

    mutating func polyline(_ points: [(Double, Double)], color: String) {
        let path = points.map { "\(rounded(x($0.0))),\(rounded(y($0.1)))" }.joined(separator: " ")
        body += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1\" opacity=\"0.6\"/>\n"
    }

    mutating func points(_ points: [(Double, Double)], color: String) {
        for point in points {
            body += "<circle cx=\"\(rounded(x(point.0)))\" cy=\"\(rounded(y(point.1)))\" r=\"4.5\" fill=\"\(color)\"/>\n"
        }
    }

    mutating func marker(at value: Double, label: String, color: String) {
        guard value >= xAxis.lower, value <= xAxis.upper else { return }
        let position = rounded(x(value))
        body += "<line x1=\"\(position)\" y1=\"\(rounded(frame.y))\" x2=\"\(position)\" "
            + "y2=\"\(rounded(frame.y + frame.height))\" stroke=\"\(color)\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\"/>\n"
        body += "<text x=\"\(rounded(x(value) + 5))\" y=\"\(rounded(frame.y + 14))\" font-size=\"12\" "
            + "fill=\"\(color)\">\(AdviceReport.escape(label))</text>\n"
    }

    /// A horizontal reference line (a threshold of the sizing rule), labelled at the right.
    mutating func threshold(at value: Double, label: String, color: String) {
        guard value > 0, value <= yUpper else { return }
        let position = rounded(y(value))
        body += "<line x1=\"\(rounded(frame.x))\" y1=\"\(position)\" x2=\"\(rounded(frame.x + frame.width))\" "
            + "y2=\"\(position)\" stroke=\"\(color)\" stroke-width=\"1\" stroke-dasharray=\"2 4\"/>\n"
        body += "<text x=\"\(rounded(frame.x + frame.width - 6))\" y=\"\(rounded(y(value) - 5))\" font-size=\"11\" "
            + "text-anchor=\"end\" fill=\"\(color)\">\(AdviceReport.escape(label))</text>\n"
    }

    mutating func legend(_ items: [(String, String, Bool)]) {
        legendItems = items
    }

    func render(sizes: [Int]) -> String {
        var out = "<g>\n"
        out += "<rect x=\"\(rounded(frame.x))\" y=\"\(rounded(frame.y))\" width=\"\(rounded(frame.width))\" "
            + "height=\"\(rounded(frame.height))\" fill=\"#fafafa\" stroke=\"#999\"/>\n"
        for step in 0...Int((yUpper / yStep).rounded()) {
            let value = yStep * Double(step)
            let position = rounded(y(value))
            out += "<line x1=\"\(rounded(frame.x))\" y1=\"\(position)\" x2=\"\(rounded(frame.x + frame.width))\" "
                + "y2=\"\(position)\" stroke=\"#e0e0e0\"/>\n"
            out += "<text x=\"\(rounded(frame.x - 8))\" y=\"\(rounded(y(value) + 4))\" font-size=\"11\" "
                + "text-anchor=\"end\" fill=\"#333\">\(tickLabel(value))</text>\n"
        }
        for size in Set(sizes).sorted() {
            let position = rounded(x(Double(size)))
            out += "<line x1=\"\(position)\" y1=\"\(rounded(frame.y + frame.height))\" x2=\"\(position)\" "
                + "y2=\"\(rounded(frame.y + frame.height + 5))\" stroke=\"#333\"/>\n"
            out += "<text x=\"\(position)\" y=\"\(rounded(frame.y + frame.height + 18))\" font-size=\"11\" "
                + "text-anchor=\"middle\" fill=\"#333\">\(size)</text>\n"
        }
        out += "<text x=\"\(rounded(frame.x + frame.width / 2))\" y=\"\(rounded(frame.y + frame.height + 36))\" "
            + "font-size=\"12\" text-anchor=\"middle\" fill=\"#333\">\(AdviceReport.escape(xLabel))</text>\n"
        let labelX = rounded(frame.x - 62)
        let labelY = rounded(frame.y + frame.height / 2)
        out += "<text x=\"\(labelX)\" y=\"\(labelY)\" font-size=\"12\" text-anchor=\"middle\" fill=\"#333\" "
            + "transform=\"rotate(-90 \(labelX) \(labelY))\">\(AdviceReport.escape(yLabel))</text>\n"
        out += body
        // The legend sits at the top left, under the marker labels: small sizes have low throughput and low
        // latency, so that corner is the emptiest of both panels.
        var legendX = frame.x + 10
        let legendY = frame.y + 34
        for item in legendItems {
            if item.2 {
                out += "<line x1=\"\(rounded(legendX))\" y1=\"\(rounded(legendY - 4))\" x2=\"\(rounded(legendX + 18))\" "
                    + "y2=\"\(rounded(legendY - 4))\" stroke=\"\(item.1)\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
            } else {
                out += "<circle cx=\"\(rounded(legendX + 9))\" cy=\"\(rounded(legendY - 4))\" r=\"4.5\" fill=\"\(item.1)\"/>\n"
            }
            out += "<text x=\"\(rounded(legendX + 22))\" y=\"\(rounded(legendY))\" font-size=\"11\" fill=\"#333\">"
                + "\(AdviceReport.escape(item.0))</text>\n"
            legendX += Double(item.0.count) * 6.5 + 36
        }
        out += "</g>\n"
        return out
    }

    static func niceStep(for rough: Double) -> Double {
        let magnitude = pow(10, floor(log10(rough)))
        let normalised = rough / magnitude
        let nice: Double = normalised <= 1 ? 1 : normalised <= 2 ? 2 : normalised <= 5 ? 5 : 10
        return nice * magnitude
    }

    private func tickLabel(_ value: Double) -> String {
        if value >= 10_000 { return "\(format(value / 1000))k" }
        if value >= 100 { return "\(Int(value.rounded()))" }
        return format(value)
    }

    private func rounded(_ value: Double) -> String {
        String(Double(Int((value * 10).rounded())) / 10)
    }
}
