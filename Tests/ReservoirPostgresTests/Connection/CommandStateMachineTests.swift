@testable import ReservoirPostgres
import Testing

/// The protocol of each kind of command without a server: the steps sent, what each libpq result means, the
/// prepared-statement cache, and the outcomes. Rows are strings.
@Suite("CommandStateMachine")
struct CommandStateMachineTests {
    typealias Machine = CommandStateMachine<String>

    static func key(_ sql: String) -> StatementCache.Key { StatementCache.Key(sql: sql, types: [23]) }

    static func serverError(_ state: SQLState, _ message: String = "failed") -> PostgresError {
        var error = PostgresError(.server, message: message)
        error.sqlState = state
        return error
    }

    /// Feeds results in order (`nil` is libpq's NULL) and returns every action.
    static func feed(
        _ machine: inout Machine,
        _ results: [Machine.Result?],
        cache: inout StatementCache,
        idle: Bool = true,
        cancelRequested: Bool = false
    ) -> [String] {
        results.map { result in
            let action: Machine.Action
            if let result {
                action = machine.resultReceived(result, cache: &cache)
            } else {
                action = machine.resultsEnded(cache: &cache, transactionIsIdle: idle, cancelRequested: cancelRequested)
            }
            return describe(action)
        }
    }

    static func describe(_ action: Machine.Action) -> String {
        switch action {
        case .readMore: "readMore"
        case .deliverToStream(let rows): "deliver \(rows)"
        case .discardCopyData: "discardCopyData"
        case .endCopyIn: "endCopyIn"
        case .breakConnection(let error): "break \(error.code)"
        case .send(let step): "send \(step)"
        case .complete(let outcome, let exit): "complete \(describe(outcome))\(exit ? " exitPipeline" : "")"
        }
    }

    static func describe(_ outcome: Machine.Outcome) -> String {
        switch outcome {
        case .rows(let rows): "rows(\(rows))"
        case .done: "done"
        case .failure(let error): "failure(\(error.sqlState?.rawValue ?? error.code.description))"
        case .cancelled: "cancelled"
        case .pipeline(let results):
            "pipeline(" + results.map {
                switch $0 {
                case .success(let rows): rows ?? "nil"
                case .failure(let error): "error \(error.sqlState?.rawValue ?? "-"): \(error.message.prefix(20))"
                }
            }.joined(separator: ", ") + ")"
        }
    }

    @Test("a cached statement runs by name in one step")
    func cachedStatement() {
        var cache = StatementCache(capacity: 4)
        cache.insert(Self.key("SELECT $1"), name: "s1")
        var (machine, step) = Machine.start(.query(Self.key("SELECT $1"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        #expect(step == .executePrepared(name: "s1"))
        #expect(Self.feed(&machine, [.rows("r", count: 1), nil], cache: &cache) == ["readMore", "complete rows(r)"])
    }

    @Test("a new statement is prepared and run in one pipeline, evicting the least recently used one")
    func newStatementInOnePipeline() {
        var cache = StatementCache(capacity: 1)
        cache.insert(Self.key("old"), name: "s0")
        var (machine, step) = Machine.start(.query(Self.key("new"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        guard case .prepareAndExecute(let name, let evicted) = step else {
            Issue.record("unexpected step \(step)")
            return
        }
        #expect(evicted == "s0")
        let actions = Self.feed(
            &machine,
            [.rows("dealloc", count: 0), nil, .pipelineSync, .rows("parse", count: 0), nil, .rows("r", count: 1), nil, .pipelineSync],
            cache: &cache)
        #expect(actions.last == "complete rows(r) exitPipeline")
        #expect(actions.dropLast().allSatisfy { $0 == "readMore" })
        #expect(cache.hit(Self.key("new")) == name)
        #expect(cache.count == 1)
    }

    @Test("a statement whose Parse fails is not cached; one whose execution fails stays cached")
    func failedPrepareIsNotCached() {
        var cache = StatementCache(capacity: 4)
        var (machine, _) = Machine.start(.query(Self.key("SELEC 1"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        let syntax = Self.serverError(.syntaxError)
        #expect(
            Self.feed(&machine, [.error(syntax), nil, .pipelineAborted, nil, .pipelineSync], cache: &cache).last
                == "complete failure(42601) exitPipeline")
        #expect(cache.count == 0)

        var (second, _) = Machine.start(.query(Self.key("INSERT"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        let unique = Self.serverError(.uniqueViolation)
        #expect(
            Self.feed(&second, [.rows("parse", count: 0), nil, .error(unique), nil, .pipelineSync], cache: &cache).last
                == "complete failure(23505) exitPipeline")
        #expect(cache.count == 1)
    }

    @Test("after a stream a new statement takes separate steps: deallocate, prepare, execute")
    func separateStepsAfterAStream() {
        var cache = StatementCache(capacity: 1)
        cache.insert(Self.key("old"), name: "s0")
        var (machine, step) = Machine.start(.query(Self.key("new"), cacheable: true), cache: &cache, singleRowModeDirty: true)
        #expect(step == .deallocate(name: "s0"))
        let name = machine.statementName ?? ""
        #expect(Self.feed(&machine, [.rows("d", count: 0), nil], cache: &cache) == ["readMore", "send \(Machine.Step.prepare(name: name))"])
        #expect(Self.feed(&machine, [.rows("p", count: 0), nil], cache: &cache) == ["readMore", "send \(Machine.Step.executePrepared(name: name))"])
        #expect(cache.hit(Self.key("new")) == name)
        #expect(Self.feed(&machine, [.rows("r", count: 1), nil], cache: &cache) == ["readMore", "complete rows(r)"])
    }

    @Test("a cached statement that disappeared is prepared again once, outside a transaction")
    func missingStatementIsPreparedAgain() {
        var cache = StatementCache(capacity: 4)
        cache.insert(Self.key("q"), name: "s1")
        var (machine, _) = Machine.start(.query(Self.key("q"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        let missing = Self.serverError(.invalidSQLStatementName)
        let retry = Self.feed(&machine, [.error(missing), nil], cache: &cache)
        let newName = machine.statementName ?? ""
        #expect(newName != "s1")
        #expect(retry == ["readMore", "send \(Machine.Step.prepare(name: newName))"])
        #expect(Self.feed(&machine, [.rows("p", count: 0), nil], cache: &cache).last == "send \(Machine.Step.executePrepared(name: newName))")
        // A second disappearance is not retried again.
        #expect(Self.feed(&machine, [.error(missing), nil], cache: &cache).last == "complete failure(26000)")
        #expect(cache.hit(Self.key("q")) == nil)

        // Inside a transaction the failure aborted it: no retry, and the entry is dropped.
        cache.insert(Self.key("t"), name: "s9")
        var (inside, _) = Machine.start(.query(Self.key("t"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        #expect(Self.feed(&inside, [.error(missing), nil], cache: &cache, idle: false).last == "complete failure(26000)")
        #expect(cache.hit(Self.key("t")) == nil)
    }

    @Test("a cancel between steps completes as cancelled instead of sending the next one")
    func cancelBetweenSteps() {
        var cache = StatementCache(capacity: 4)
        var (machine, _) = Machine.start(.query(Self.key("new"), cacheable: true), cache: &cache, singleRowModeDirty: true)
        #expect(Self.feed(&machine, [nil], cache: &cache, cancelRequested: true) == ["complete cancelled"])
    }

    @Test("an uncached statement, a script and a failing script")
    func unnamedAndScript() {
        var cache = StatementCache(capacity: 0)
        var (query, step) = Machine.start(.query(Self.key("q"), cacheable: true), cache: &cache, singleRowModeDirty: false)
        #expect(step == .executeUnnamed)
        #expect(Self.feed(&query, [.rows("r", count: 0), nil], cache: &cache).last == "complete rows(r)")
        var (script, scriptStep) = Machine.start(.script, cache: &cache, singleRowModeDirty: false)
        #expect(scriptStep == .script)
        #expect(
            Self.feed(&script, [.rows("a", count: 0), .error(Self.serverError(.divisionByZero)), nil], cache: &cache).last
                == "complete failure(22012)")
    }

    @Test("a stream delivers its rows, drops the empty final result, and ends with the server's error")
    func stream() {
        var cache = StatementCache(capacity: 4)
        var (machine, step) = Machine.start(.stream(Self.key("s")), cache: &cache, singleRowModeDirty: false)
        #expect(step == .stream)
        #expect(
            Self.feed(&machine, [.singleRow("1"), .singleRow("2"), .rows("end", count: 0), nil], cache: &cache)
                == ["deliver 1", "deliver 2", "readMore", "complete done"])
        var (failing, _) = Machine.start(.stream(Self.key("s")), cache: &cache, singleRowModeDirty: false)
        #expect(
            Self.feed(&failing, [.singleRow("1"), .error(Self.serverError(.divisionByZero)), nil], cache: &cache).last
                == "complete failure(22012)")
    }

    @Test("COPY is refused: out is drained with an error, in is ended, replication breaks the connection")
    func copy() {
        var cache = StatementCache(capacity: 0)
        var (machine, _) = Machine.start(.script, cache: &cache, singleRowModeDirty: false)
        #expect(Self.feed(&machine, [.copyOut], cache: &cache) == ["discardCopyData"])
        #expect(Self.feed(&machine, [.rows("x", count: 0), nil], cache: &cache).last == "complete failure(unsupported)")
        var (copyIn, _) = Machine.start(.script, cache: &cache, singleRowModeDirty: false)
        #expect(Self.feed(&copyIn, [.copyIn], cache: &cache) == ["endCopyIn"])
        var (both, _) = Machine.start(.script, cache: &cache, singleRowModeDirty: false)
        #expect(Self.feed(&both, [.copyBoth], cache: &cache) == ["break unsupported"])
    }

    @Test("independent pipeline statements each get their own result; a failed one does not affect the others")
    func independentPipeline() {
        var cache = StatementCache(capacity: 4)
        cache.insert(Self.key("a"), name: "s1")
        var (machine, step) = Machine.start(
            .pipeline([Self.key("a"), Self.key("b"), Self.key("c")], transaction: false), cache: &cache,
            singleRowModeDirty: false)
        guard case .pipeline(let statements, transaction: false) = step else {
            Issue.record("unexpected step \(step)")
            return
        }
        #expect(statements.first == .prepared(name: "s1"))
        #expect(statements.count == 3)
        let actions = Self.feed(
            &machine,
            [
                .rows("A", count: 1), nil, .pipelineSync,  // a: cached, Execute only
                .rows("parse", count: 0), nil, .error(Self.serverError(.divisionByZero)), nil, .pipelineSync,  // b
                .rows("parse", count: 0), nil, .rows("C", count: 1), nil, .pipelineSync,  // c
            ],
            cache: &cache)
        #expect(actions.last == "complete pipeline(A, error 22012: failed, C) exitPipeline")
        #expect(cache.count == 3)  // b's Parse ran: it stays prepared
    }

    @Test("a transaction pipeline reports every statement failed when one fails, and drops Parses that never ran")
    func transactionPipeline() {
        var cache = StatementCache(capacity: 4)
        var (machine, step) = Machine.start(
            .pipeline([Self.key("a"), Self.key("b"), Self.key("c")], transaction: true), cache: &cache,
            singleRowModeDirty: false)
        guard case .pipeline(let statements, transaction: true) = step else {
            Issue.record("unexpected step \(step)")
            return
        }
        #expect(statements.count == 3)
        let success = Self.feed(
            &machine,
            [
                .rows("pa", count: 0), nil, .rows("A", count: 1), nil,
                .rows("pb", count: 0), nil, .rows("B", count: 1), nil,
                .rows("pc", count: 0), nil, .rows("C", count: 1), nil,
                .pipelineSync,
            ],
            cache: &cache)
        #expect(success.last == "complete pipeline(A, B, C) exitPipeline")

        var fresh = StatementCache(capacity: 4)
        var (failing, _) = Machine.start(
            .pipeline([Self.key("a"), Self.key("b"), Self.key("c")], transaction: true), cache: &fresh,
            singleRowModeDirty: false)
        let failure = Self.feed(
            &failing,
            [
                .rows("pa", count: 0), nil, .rows("A", count: 1), nil,
                .rows("pb", count: 0), nil, .error(Self.serverError(.checkViolation)), nil,
                .pipelineAborted, nil, .pipelineAborted, nil,  // c's Parse and Execute are skipped
                .pipelineSync,
            ],
            cache: &fresh)
        #expect(failure.last?.hasPrefix("complete pipeline(error -: rolled back: stateme, error 23514: failed, error -:") == true)
        #expect(failure.last?.contains("error 23514: failed") == true)
        #expect(fresh.hit(Self.key("c")) == nil)  // its Parse never ran
        #expect(fresh.hit(Self.key("a")) != nil)
    }

    @Test("after a stream a pipeline first resets libpq's single-row mode")
    func pipelineAfterStream() {
        var cache = StatementCache(capacity: 0)
        var (machine, step) = Machine.start(.pipeline([Self.key("a")], transaction: false), cache: &cache, singleRowModeDirty: true)
        #expect(step == .resetSingleRowMode)
        #expect(
            Self.feed(&machine, [.rows("", count: 0), nil], cache: &cache).last
                == "send \(Machine.Step.pipeline([.unnamed], transaction: false))")
        #expect(Self.feed(&machine, [.rows("A", count: 1), nil, .pipelineSync], cache: &cache).last == "complete pipeline(A) exitPipeline")
    }

    // MARK: The first command of a transaction carries its BEGIN.

    @Test("a cached or unnamed query sends BEGIN in its own pipeline and returns the statement's rows")
    func beginWithACachedQuery() {
        var cache = StatementCache(capacity: 4)
        cache.insert(Self.key("q"), name: "s1")
        var (machine, step) = Machine.start(
            .query(Self.key("q"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN READ ONLY")
        #expect(step == .beginAndExecute("BEGIN READ ONLY", .prepared(name: "s1")))
        #expect(machine.statementText == "BEGIN READ ONLY")  // an error read now is BEGIN's
        let actions = Self.feed(
            &machine, [.rows("begin", count: 0), nil, .rows("r", count: 1), nil, .pipelineSync], cache: &cache)
        #expect(actions == ["readMore", "readMore", "readMore", "readMore", "complete rows(r) exitPipeline"])

        var (unnamed, unnamedStep) = Machine.start(
            .query(Self.key("u"), cacheable: false), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        #expect(unnamedStep == .beginAndExecute("BEGIN", .unnamed))
        let beginOnly = Self.feed(&unnamed, [.rows("begin", count: 0), nil], cache: &cache)
        #expect(beginOnly == ["readMore", "readMore"])
        #expect(unnamed.statementText == "u")
        #expect(Self.feed(&unnamed, [.rows("", count: 0), nil, .pipelineSync], cache: &cache).last == "complete rows() exitPipeline")
    }

    @Test("when BEGIN fails its statement is skipped and the command fails with BEGIN's error")
    func failedBegin() {
        var cache = StatementCache(capacity: 4)
        cache.insert(Self.key("q"), name: "s1")
        var (machine, _) = Machine.start(
            .query(Self.key("q"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        let failure = Self.serverError(.syntaxError)
        #expect(
            Self.feed(&machine, [.error(failure), nil, .pipelineAborted, nil, .pipelineSync], cache: &cache).last
                == "complete failure(42601) exitPipeline")
        #expect(machine.beginFailed)  // the connection fails the rest of the transaction's statements unsent
        #expect(cache.hit(Self.key("q")) == "s1")  // the statement is still prepared on the server

        // The statement's own error, after BEGIN succeeded, is not BEGIN's.
        var (second, _) = Machine.start(
            .query(Self.key("q"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        let unique = Self.serverError(.uniqueViolation)
        #expect(
            Self.feed(&second, [.rows("begin", count: 0), nil, .error(unique), nil, .pipelineSync], cache: &cache).last
                == "complete failure(23505) exitPipeline")
        #expect(!second.beginFailed)
    }

    @Test("a statement sent with BEGIN that disappeared from the server is dropped from the cache, not retried")
    func missingStatementWithBegin() {
        var cache = StatementCache(capacity: 4)
        cache.insert(Self.key("q"), name: "s1")
        var (machine, _) = Machine.start(
            .query(Self.key("q"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        let missing = Self.serverError(.invalidSQLStatementName)
        // Inside the transaction the failure aborted it: the caller sees the error, the next use prepares again.
        #expect(
            Self.feed(&machine, [.rows("begin", count: 0), nil, .error(missing), nil, .pipelineSync], cache: &cache, idle: false)
                == ["readMore", "readMore", "readMore", "readMore", "complete failure(26000) exitPipeline"])
        #expect(cache.hit(Self.key("q")) == nil)
    }

    @Test("a statement to prepare runs BEGIN as a step of its own and evicts nothing until BEGIN succeeded")
    func beginBeforeAPrepare() {
        var cache = StatementCache(capacity: 1)
        cache.insert(Self.key("old"), name: "s0")
        var (machine, step) = Machine.start(
            .query(Self.key("new"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        #expect(step == .begin("BEGIN"))
        #expect(cache.hit(Self.key("old")) == "s0")
        let next = Self.feed(&machine, [.rows("begin", count: 0), nil], cache: &cache)
        let name = machine.statementName ?? ""
        #expect(next == ["readMore", "send \(Machine.Step.prepareAndExecute(name: name, evicted: "s0"))"])
        let actions = Self.feed(
            &machine,
            [.rows("dealloc", count: 0), nil, .pipelineSync, .rows("parse", count: 0), nil, .rows("r", count: 1), nil, .pipelineSync],
            cache: &cache, idle: false)
        #expect(actions.last == "complete rows(r) exitPipeline")
        #expect(cache.hit(Self.key("new")) == name)

        // A BEGIN that fails, or a cancel once it ran, ends the command before its statement is planned.
        var (failing, _) = Machine.start(
            .query(Self.key("other"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        #expect(Self.feed(&failing, [.error(Self.serverError(.syntaxError)), nil], cache: &cache).last == "complete failure(42601)")
        #expect(failing.beginFailed)
        var (cancelled, _) = Machine.start(
            .query(Self.key("other"), cacheable: true), cache: &cache, singleRowModeDirty: false, begin: "BEGIN")
        #expect(Self.feed(&cancelled, [.rows("begin", count: 0), nil], cache: &cache, cancelRequested: true).last == "complete cancelled")
        #expect(cache.hit(Self.key("new")) == name)  // nothing was evicted for them
        #expect(cache.count == 1)
    }

    @Test("a script, a stream, a pipeline and a query after a stream send BEGIN first, then their own steps")
    func beginBeforeOtherCommands() {
        var cache = StatementCache(capacity: 0)
        let commands: [(Machine.Kind, Bool, Machine.Step)] = [
            (.script, false, .script),
            (.stream(Self.key("s")), false, .stream),
            (.pipeline([Self.key("a")], transaction: true), false, .pipeline([.unnamed], transaction: true)),
            (.query(Self.key("q"), cacheable: false), true, .executeUnnamed),
        ]
        for (kind, afterStream, own) in commands {
            var (machine, step) = Machine.start(kind, cache: &cache, singleRowModeDirty: afterStream, begin: "BEGIN")
            #expect(step == .begin("BEGIN"))
            #expect(machine.statementText == "BEGIN")
            // BEGIN's rows are not a stream's rows: nothing is delivered.
            #expect(Self.feed(&machine, [.rows("begin", count: 1), nil], cache: &cache) == ["readMore", "send \(own)"])
        }
    }
}
