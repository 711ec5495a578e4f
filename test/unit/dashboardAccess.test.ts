// The dashboard's admission rules (client/dashboard/access.ts) and where it may listen
// (client/commands/dashboard.ts): loopback hosts only by their loopback names, the token
// compared whole, and no address beyond loopback without one.
import { hostAllowed, isLoopback, tokensEqual } from '../../client/dashboard/access.js';
import { listenAddress } from '../../client/commands/dashboard.js';
import { validateConfig } from '../../common/config.js';

const config = validateConfig(
  { database: { url: 'postgres://u@127.0.0.1/db' }, repositories: { local: { type: 'filesystem', path: '/tmp/r' } }, encryption: { publicKeyFile: '/tmp/k.asc' } },
  'test',
);

test('loopback addresses, and only they, are loopback', () => {
  for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect([host, isLoopback(host)]).toEqual([host, true]);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '127.0.0.1.example.com', 'localhost.example']) expect([host, isLoopback(host)]).toEqual([host, false]);
});

test('on loopback, a request must name 127.0.0.1, localhost or [::1]: a rebound name is refused', () => {
  for (const host of ['127.0.0.1:8390', 'localhost:1', 'LOCALHOST', '[::1]:8390', '127.0.0.1']) expect([host, hostAllowed(host)]).toEqual([host, true]);
  for (const host of [undefined, '', 'evil.example:8390', '127.0.0.1.evil.example', 'localhost.evil.example:8390', '127.0.0.1:80@evil', '[::1]x', '127.0.0.2:8390']) {
    expect([host, hostAllowed(host)]).toEqual([host, false]);
  }
});

test('tokens are equal only when whole and identical', () => {
  expect(tokensEqual('0123456789abcdef', '0123456789abcdef')).toBe(true);
  for (const given of ['0123456789abcdeF', '0123456789abcde', '0123456789abcdef0', '']) expect(tokensEqual(given, '0123456789abcdef')).toBe(false);
});

test('the dashboard listens beyond loopback only with a token', () => {
  expect(listenAddress(config, {}, undefined)).toEqual({ host: '127.0.0.1', port: 8390 });
  expect(listenAddress(config, { host: 'localhost', port: '0' }, undefined)).toEqual({ host: 'localhost', port: 0 });
  expect(() => listenAddress(config, { host: '0.0.0.0' }, undefined)).toThrow(/dashboard\.tokenFile/);
  expect(() => listenAddress(config, { host: '10.1.2.3' }, undefined)).toThrow(/not loopback/);
  expect(listenAddress(config, { host: '0.0.0.0' }, 'a-token-of-16-chars')).toEqual({ host: '0.0.0.0', port: 8390 });
  expect(() => listenAddress(config, { port: '70000' }, undefined)).toThrow(/--port 70000/);
});
