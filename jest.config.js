// ESM all the way: execa is ESM-only, so the project is too, and jest runs with
// --experimental-vm-modules (see package.json "test").
//
// Two projects: `unit` (test/unit/: pure logic, no server, no child process, runs in seconds:
// `npm run test:unit`) and `integration` (every other test; many start real servers). `npm test`
// runs both. A project takes none of the top-level project options, so each gets them here.
const shared = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, isolatedModules: true, diagnostics: false }],
  },
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  slowTestThreshold: 60,
};

export default {
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/'],
    },
  ],
  reporters: ['default', '<rootDir>/test/summaryReporter.cjs'],
  // Integration suites start real servers and spend much of their time waiting on them (a
  // worker's heartbeat timeout, a replay, a kill's recovery): three at a time on a 2-core
  // machine took 751 s where two took 1047 s (CI runs of 2026-11-29), and kept the suite well
  // under 20 minutes.
  maxWorkers: 3,
  testTimeout: 180_000,
};
