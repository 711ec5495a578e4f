/* global require, exports */
// With payload encryption on, failure messages and stack traces (which name databases, backups
// and repositories) travel as an encoded payload, so the payload codec encrypts them too.
// CommonJS on purpose: the SDK require()s this file in the worker and client process, and the
// workflow bundler builds it into the workflow sandbox; plain CommonJS loads in all three.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS by design, see above
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
