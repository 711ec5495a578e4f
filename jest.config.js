// ESM all the way: execa is ESM-only, so the project is too, and jest runs with
// --experimental-vm-modules (see package.json "test").
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, isolatedModules: true, diagnostics: false }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  reporters: ['default', '<rootDir>/test/summaryReporter.cjs'],
  // Integration suites start real servers; two at a time fits a 2-core machine.
  maxWorkers: 2,
  testTimeout: 180_000,
  slowTestThreshold: 60,
};
