import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

import ReservoirPostgres

@testable import ReservoirCommand

@Suite("Advice report")
struct AdviceReportTests {
    final class ElementCounter: NSObject, XMLParserDelegate {
        var counts: [String: Int] = [:]
        var texts: [String] = []
        func parser(
            _ parser: XMLParser,
            didStartElement elementName: String,
            namespaceURI: String?,
            qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            counts[elementName, default: 0] += 1
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) {
            texts.append(string)
        }
    }

    @Test("the SVG is well-formed and draws every measured point and the recommendation")
    func wellFormed() throws {
        let model = ScalabilityModel(singleClientThroughput: 8_000, contention: 0.03, coherency: 0.003)
        let points = ScalabilityFitTests.points(model, sizes: [1, 2, 4, 8, 16, 32])
        let advice = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 100, reservedConnections: 3, instances: 2)
        )
        let svg = AdviceReport.svg(advice, title: "select 1 & <friends>")
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = ElementCounter()
        parser.delegate = counter
        #expect(parser.parse())
        // Throughput points, p50 points and p99 points, plus two legend dots per panel.
        #expect(counter.counts["circle"] == points.count * 3 + 3)
        let text = counter.texts.joined()
        // The header and the marker tell the same total, split per instance.
        #expect(text.contains("recommended \(advice.recommendedTotal) = \(advice.recommendedPerInstance) × 2"))
        #expect(text.contains(
            "recommended maximumSize \(advice.recommendedPerInstance) per instance × 2 = "
                + "\(advice.recommendedTotal) in total"
        ))
        // The reasoning is in the picture.
        #expect(text.contains("Why this size"))
        #expect(text.contains("Decided by"))
        #expect(text.contains("select 1 & <friends>"))
        #expect(text.contains("peak"))
    }

    @Test("a recommendation of 1 is drawn inside the plot, not on the y axis")
    func markerAtOneIsInside() throws {
        let points = [
            LoadPoint(concurrency: 1, throughput: 1_000, latencyP50: 0.001, latencyP99: 0.002),
            LoadPoint(concurrency: 2, throughput: 1_010, latencyP50: 0.002, latencyP99: 0.004),
            LoadPoint(concurrency: 4, throughput: 1_000, latencyP50: 0.004, latencyP99: 0.008),
        ]
        let advice = try PoolSizeAdvisor.advise(
            points: points,
            budget: ConnectionBudget(maxConnections: 100, reservedConnections: 3, instances: 1)
        )
        #expect(advice.recommendedTotal == 1)
        let svg = AdviceReport.svg(advice, title: "flat")
        // Panels start at x = 90; the marker line for size 1 must sit to the right of it.
        let markerStyle = "stroke=\"#2ca02c\" stroke-width=\"1.5\""
        let marker = try #require(svg.split(separator: "\n").first { $0.contains(markerStyle) })
        let x1 = try #require(marker.split(separator: "\"").dropFirst().first.flatMap { Double($0) })
        #expect(x1 > 100)
    }
}

@Suite("advise's guards")
struct AdviseGuardTests {
    @Test("an output path in a missing directory is refused before anything is measured")
    func missingDirectory() {
        #expect(throws: AdviceError.self) { try AdviseRunner.checkWritable("/missing/dir/x.svg") }
        #expect(throws: Never.self) { try AdviseRunner.checkWritable(NSTemporaryDirectory() + "/reservoir-advise.svg") }
    }

    @Test("the measuring connections are read-only unless writes are allowed, keeping options already given")
    func readOnlyConnections() throws {
        var connection = try PostgresConnection.Configuration(connectionString: "host=/tmp dbname=x")
        try connection.set("options", to: "-c search_path=app")
        let readOnly = LoadCurveMeasurement(
            connection: connection, workload: .statement("DELETE FROM t"), sizes: [1], durationPerSize: .seconds(1)
        )
        #expect(
            try readOnly.readOnlyConnection()["options"] == "-c search_path=app -c default_transaction_read_only=on"
        )
        var writing = readOnly
        writing.allowWrites = true
        #expect(try writing.readOnlyConnection()["options"] == "-c search_path=app")
    }
}
