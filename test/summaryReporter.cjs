/* global process, module */
// Prints the plain closing line CI reads in any language: "N passed, N failed", and before it
// the slowest test files, so the suite's time (kept well under 20 minutes) is watched.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const files = results.testResults
      .map((r) => ({ path: r.testFilePath.replace(/^.*\/test\//, 'test/'), seconds: (r.perfStats.end - r.perfStats.start) / 1000 }))
      .sort((a, b) => b.seconds - a.seconds);
    const total = files.reduce((sum, f) => sum + f.seconds, 0);
    process.stdout.write(`\nslowest test files (of ${files.length}, ${total.toFixed(0)} s in all across workers):\n`);
    for (const f of files.slice(0, 15)) process.stdout.write(`  ${f.seconds.toFixed(1).padStart(7)} s  ${f.path}\n`);
    const tests = results.testResults
      .flatMap((r) => r.testResults.map((t) => ({ name: `${r.testFilePath.replace(/^.*\/test\//, '')}: ${t.fullName}`.slice(0, 140), seconds: (t.duration ?? 0) / 1000 })))
      .sort((a, b) => b.seconds - a.seconds);
    process.stdout.write(`\nslowest tests:\n`);
    for (const t of tests.slice(0, 20)) process.stdout.write(`  ${t.seconds.toFixed(1).padStart(7)} s  ${t.name}\n`);
    process.stdout.write(`\n${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  }
}
module.exports = SummaryReporter;
