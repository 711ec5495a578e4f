// docker-compose.temporal.yml cannot be started here (no Docker engine), so this suite reads it
// the way Compose would and checks its wiring: the services, their images, who waits for whom,
// that the server, the schema job, the UI and the worker agree on addresses, names and
// credentials, that every file it mounts exists, and that no secret is written into it.
// Variables are resolved as on a fresh checkout: no .env, every ${VAR:-default} takes its default.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { validateConfig } from '../../common/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.temporal.yml');

const POSTGRES = 'postgresql';
const SCHEMA_JOB = 'temporal-admin-tools';
const SERVER = 'temporal';
const NAMESPACE_JOB = 'temporal-create-namespace';
const UI = 'temporal-ui';
const WORKER = 'backup-worker';
const EXPECTED_SERVICES = [POSTGRES, SCHEMA_JOB, SERVER, NAMESPACE_JOB, UI, WORKER];

// Environment keys whose values are secrets: never literal in the compose file.
const SECRET_KEY = /PASSWORD|PASSWD|PWD|SECRET|TOKEN|ACCESS_KEY|API_KEY|PRIVATE/i;
// The backup secrets belong in an env_file, not in `environment:` at all.
const ENV_FILE_ONLY = ['PGPASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'DATABASE_URL'];
// The one secret that may have a default: the throwaway password of Temporal's own database.
const DEFAULTABLE_SECRET_VARIABLES = ['TEMPORAL_DB_PASSWORD'];

type Service = Record<string, any>;
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}
interface Mount {
  type: 'bind' | 'volume';
  /** Host path (bind, resolved against the repository) or volume name; undefined: anonymous. */
  source?: string;
  /** The source as written, after interpolation. */
  rawSource?: string;
  target: string;
  readOnly: boolean;
}

// ---- reading the file as Compose does ------------------------------------------------------

/** Compose variable interpolation with an empty environment: defaults apply, `$$` is `$`. */
function interpolate(value: string): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, name?: string, op?: string, arg?: string) => {
      if (match === '$$') return '$';
      if (!name || !op) return '';
      if (op.endsWith('-')) return arg ?? '';
      if (op.endsWith('?')) throw new Error(`compose requires variable ${name}: ${arg}`);
      return ''; // ${VAR:+alt} with VAR unset
    },
  );
}

function interpolateDeep<T>(node: T): T {
  if (typeof node === 'string') return interpolate(node) as T;
  if (Array.isArray(node)) return node.map((n) => interpolateDeep(n)) as T;
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateDeep(v)])) as T;
  }
  return node;
}

function loadCompose(): { raw: Compose; resolved: Compose; text: string } {
  const text = readFileSync(COMPOSE_FILE, 'utf8');
  const raw = YAML.parse(text) as Compose;
  return { raw, resolved: interpolateDeep(raw), text };
}

/** `environment:` as a map, from either the map or the KEY=VALUE list form. */
function env(service: Service): Record<string, string> {
  const e = service.environment ?? {};
  if (Array.isArray(e)) {
    return Object.fromEntries(
      e.map((item: string) => {
        const at = item.indexOf('=');
        return at < 0 ? [item, ''] : [item.slice(0, at), item.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** `depends_on:` as service name -> condition, from either the list or the map form. */
function dependsOn(service: Service): Record<string, string> {
  const d = service.depends_on ?? {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((name: string) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([name, spec]) => [name, (spec as any)?.condition ?? 'service_started']));
}

function isHostPath(source: string): boolean {
  return source.startsWith('.') || source.startsWith('/') || source.startsWith('~');
}

/** `volumes:` of a service (short or long syntax), sources resolved against the repository. */
function mounts(service: Service): Mount[] {
  return (service.volumes ?? []).map((v: any): Mount => {
    if (typeof v === 'string') {
      const parts = v.split(':');
      if (parts.length === 1) return { type: 'volume', target: parts[0], readOnly: false };
      const [source, target, mode = ''] = parts;
      const bind = isHostPath(source);
      return {
        type: bind ? 'bind' : 'volume',
        source: bind ? path.resolve(ROOT, source) : source,
        rawSource: source,
        target,
        readOnly: mode.split(',').includes('ro'),
      };
    }
    const bind = v.type === 'bind';
    return {
      type: bind ? 'bind' : 'volume',
      source: v.source === undefined ? undefined : bind ? path.resolve(ROOT, v.source) : v.source,
      rawSource: v.source,
      target: v.target,
      readOnly: Boolean(v.read_only),
    };
  });
}

/** The host file behind a path inside the container, through the service's bind mounts. */
function hostPathOf(service: Service, containerPath: string): string | undefined {
  for (const m of mounts(service)) {
    if (m.type !== 'bind' || !m.source) continue;
    if (containerPath === m.target) return m.source;
    if (containerPath.startsWith(m.target.replace(/\/$/, '') + '/')) return path.join(m.source, path.relative(m.target, containerPath));
  }
  return undefined;
}

/** Container-side ports a service publishes ("[ip:]host:container[/proto]" or long syntax). */
function containerPorts(service: Service): number[] {
  return (service.ports ?? []).map((p: any) => {
    if (typeof p === 'object') return Number(p.target);
    return Number(String(p).split('/')[0].split(':').at(-1));
  });
}

/** name[:tag][@digest] -> tag and digest. */
function parseImage(image: string): { name: string; tag?: string; digest?: string } {
  const [ref, digest] = image.split('@');
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1), digest };
  return { name: ref, digest };
}

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

function asArgv(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.map(String);
  return String(value).split(/\s+/).filter(Boolean);
}

/** The last exec-form (JSON array) instruction of that name in a Dockerfile. */
function dockerfileExec(dockerfile: string, instruction: 'ENTRYPOINT' | 'CMD'): string[] | undefined {
  const lines = dockerfile.split('\n').filter((l) => new RegExp(`^\\s*${instruction}\\s`, 'i').test(l));
  const last = lines.at(-1);
  if (!last) return undefined;
  const body = last.replace(new RegExp(`^\\s*${instruction}\\s+`, 'i'), '').trim();
  return body.startsWith('[') ? (JSON.parse(body) as string[]) : ['/bin/sh', '-c', body];
}

function workerBuild(service: Service): { context: string; dockerfile: string } {
  const build = service.build;
  const context = path.resolve(ROOT, typeof build === 'string' ? build : build.context ?? '.');
  const dockerfile = path.resolve(context, typeof build === 'object' && build.dockerfile ? build.dockerfile : 'Dockerfile');
  return { context, dockerfile };
}

/** The script a one-shot admin-tools job runs: the bind-mounted file in its entrypoint/command. */
function jobScript(service: Service): string {
  const argv = [...asArgv(service.entrypoint), ...asArgv(service.command)];
  const host = argv.map((arg) => hostPathOf(service, arg)).find((p) => p !== undefined);
  if (!host) throw new Error(`the job runs no mounted script: ${JSON.stringify(argv)}`);
  return readFileSync(host, 'utf8');
}

// ---- the checks ------------------------------------------------------------------------------

const { raw, resolved, text } = loadCompose();
const services = resolved.services;
const rawServices = raw.services;

describe('docker-compose.temporal.yml', () => {
  it('has every expected service, each with an image or a build', () => {
    expect(Object.keys(services).sort()).toEqual(expect.arrayContaining(EXPECTED_SERVICES.sort()));
    for (const [name, service] of Object.entries(services)) {
      expect({ name, hasImageOrBuild: Boolean(service.image || service.build) }).toEqual({ name, hasImageOrBuild: true });
    }
  });

  it('pins every image to a tag other than latest (or a digest)', () => {
    for (const [name, service] of Object.entries(services)) {
      if (!service.image) continue;
      const { tag, digest } = parseImage(service.image);
      const pinned = Boolean(digest) || (Boolean(tag) && tag !== 'latest');
      expect({ name, image: service.image, pinned }).toEqual({ name, image: service.image, pinned: true });
    }
  });

  it('runs the Temporal server with the schema tools of the same release', () => {
    const server = parseImage(services[SERVER].image);
    expect(server.name).toBe('temporalio/server');
    expect(server.tag).toMatch(/^\d+\.\d+\.\d+$/);
    for (const job of [SCHEMA_JOB, NAMESPACE_JOB]) {
      const tools = parseImage(services[job].image);
      expect(tools.name).toBe('temporalio/admin-tools');
      // Admin-tools tags are "<server version>" or "<server version>-tctl-…-cli-…".
      expect(tools.tag === server.tag || tools.tag!.startsWith(`${server.tag}-`)).toBe(true);
    }
    expect(parseImage(services[UI].image).name).toBe('temporalio/ui');
    expect(parseImage(services[POSTGRES].image).name).toBe('postgres');
  });

  it('names only existing services in depends_on, with conditions they can meet', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, condition] of Object.entries(dependsOn(service))) {
        expect({ name, dependency, exists: dependency in services }).toEqual({ name, dependency, exists: true });
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition);
        if (condition === 'service_healthy') {
          // Compose refuses service_healthy on a service without a healthcheck.
          expect({ dependency, healthcheck: Boolean(services[dependency].healthcheck?.test) }).toEqual({ dependency, healthcheck: true });
        }
        if (condition === 'service_completed_successfully') {
          // A job that is restarted "always" never completes.
          expect(['always', 'unless-stopped']).not.toContain(services[dependency].restart);
        }
      }
    }
  });

  it('starts the server only after the schema job succeeded and PostgreSQL is healthy', () => {
    const deps = dependsOn(services[SERVER]);
    expect(deps[SCHEMA_JOB]).toBe('service_completed_successfully');
    expect(deps[POSTGRES]).toBe('service_healthy');
    expect(dependsOn(services[SCHEMA_JOB])[POSTGRES]).toBe('service_healthy');
    expect(dependsOn(services[NAMESPACE_JOB])[SERVER]).toBe('service_healthy');
    expect(dependsOn(services[UI])).toHaveProperty(SERVER);
    const workerDeps = dependsOn(services[WORKER]);
    expect(workerDeps).toHaveProperty(SERVER);
    expect(workerDeps[NAMESPACE_JOB]).toBe('service_completed_successfully');
  });

  it('keeps PostgreSQL data in a named volume', () => {
    const data = mounts(services[POSTGRES]).find((m) => m.target === '/var/lib/postgresql/data');
    expect(data).toMatchObject({ type: 'volume', source: expect.any(String) });
  });

  it('points the server and the schema job at the postgresql service with its credentials', () => {
    // Compared as written: the same ${VAR:-default} expressions, not just the same defaults.
    const pgRaw = env(rawServices[POSTGRES]);
    const serverRaw = env(rawServices[SERVER]);
    const jobRaw = env(rawServices[SCHEMA_JOB]);
    const pgPort = env(services[POSTGRES]).PGPORT ?? '5432';

    const server = env(services[SERVER]);
    expect(server.DB).toMatch(/^postgres12(_pgx)?$/);
    expect(server.POSTGRES_SEEDS).toBe(POSTGRES);
    expect(server.DB_PORT).toBe(pgPort);
    expect(serverRaw.POSTGRES_USER).toBe(pgRaw.POSTGRES_USER);
    expect(serverRaw.POSTGRES_PWD).toBe(pgRaw.POSTGRES_PASSWORD);

    const job = env(services[SCHEMA_JOB]);
    expect(job.SQL_PLUGIN).toBe(server.DB);
    expect(job.SQL_HOST).toBe(POSTGRES);
    expect(job.SQL_PORT ?? '5432').toBe(pgPort);
    expect(jobRaw.SQL_USER).toBe(pgRaw.POSTGRES_USER);
    expect(jobRaw.SQL_PASSWORD).toBe(pgRaw.POSTGRES_PASSWORD);

    // The schema job must prepare the very databases the server opens.
    expect(server.DBNAME).toBeTruthy();
    expect(server.VISIBILITY_DBNAME).toBeTruthy();
    expect(server.DBNAME).not.toBe(server.VISIBILITY_DBNAME);
    expect(job.DBNAME).toBe(server.DBNAME);
    expect(job.VISIBILITY_DBNAME).toBe(server.VISIBILITY_DBNAME);
    expect(server.BIND_ON_IP).toBe('0.0.0.0');
  });

  it('has the schema job create and update both databases from the image schema dirs, then exit', () => {
    // The admin-tools image's own entrypoint sleeps forever: a job must override it.
    expect(services[SCHEMA_JOB].entrypoint).toBeDefined();
    const script = jobScript(services[SCHEMA_JOB]);
    expect(script).toContain('/etc/temporal/schema/postgresql/v12/temporal/versioned');
    expect(script).toContain('/etc/temporal/schema/postgresql/v12/visibility/versioned');
    for (const step of ['create-database', 'setup-schema', 'update-schema']) expect(script).toMatch(new RegExp(`temporal-sql-tool[^\\n]*${step}`));
    expect(script).toMatch(/\$(\{)?DBNAME/);
    expect(script).toMatch(/\$(\{)?VISIBILITY_DBNAME/);
  });

  it('has the namespace job create the namespace the worker and the UI use', () => {
    const job = services[NAMESPACE_JOB];
    expect(job.entrypoint).toBeDefined();
    const script = jobScript(job);
    expect(script).toMatch(/temporal operator namespace create/);
    expect(script).toMatch(/--namespace "?\$(\{)?NAMESPACE/);
    const jobEnv = env(job);
    const namespace = env(services[WORKER]).TEMPORAL_NAMESPACE;
    expect(namespace).toBe('default');
    expect(jobEnv.NAMESPACE).toBe(namespace);
    expect(env(services[UI]).TEMPORAL_DEFAULT_NAMESPACE ?? 'default').toBe(namespace);
  });

  it('points every Temporal client at the temporal service and its frontend port', () => {
    const serverPorts = containerPorts(services[SERVER]);
    expect(serverPorts).toContain(7233);
    for (const client of [UI, WORKER, NAMESPACE_JOB]) {
      const address = env(services[client]).TEMPORAL_ADDRESS;
      expect({ client, address }).toEqual({ client, address: expect.any(String) });
      const { host, port } = splitAddress(address);
      expect({ client, host }).toEqual({ client, host: SERVER });
      expect({ client, port, frontend: serverPorts.includes(port) }).toEqual({ client, port, frontend: true });
    }
    expect(containerPorts(services[UI])).toContain(8080);
  });

  it('mounts only host files that exist in the repository', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const m of mounts(service)) {
        if (m.type !== 'bind' || !m.rawSource || !m.rawSource.startsWith('.')) continue;
        expect({ name, mount: m.rawSource, exists: existsSync(m.source!) }).toEqual({ name, mount: m.rawSource, exists: true });
      }
    }
  });

  it('declares every named volume it uses', () => {
    const declared = Object.keys(resolved.volumes ?? {});
    for (const [name, service] of Object.entries(services)) {
      for (const m of mounts(service)) {
        if (m.type === 'volume' && m.source) expect({ name, volume: m.source, declared: declared.includes(m.source) }).toEqual({ name, volume: m.source, declared: true });
      }
    }
  });

  it('loads env files that exist, or optional ones that have a committed example', () => {
    for (const [name, service] of Object.entries(services)) {
      const files = service.env_file === undefined ? [] : Array.isArray(service.env_file) ? service.env_file : [service.env_file];
      for (const f of files) {
        const file = path.resolve(ROOT, typeof f === 'string' ? f : f.path);
        const required = typeof f === 'string' || f.required !== false;
        const ok = required ? existsSync(file) : existsSync(`${file}.example`);
        expect({ name, file: path.relative(ROOT, file), required, ok }).toEqual({ name, file: path.relative(ROOT, file), required, ok: true });
      }
    }
  });

  it('gives the server a dynamic config file that is mounted and parses', () => {
    const server = services[SERVER];
    const file = env(server).DYNAMIC_CONFIG_FILE_PATH;
    expect(file).toMatch(/^\//);
    const host = hostPathOf(server, file);
    expect(host).toBeDefined();
    expect(statSync(host!).isFile()).toBe(true);
    expect(() => YAML.parse(readFileSync(host!, 'utf8'))).not.toThrow();
  });

  it('builds the worker from a Dockerfile whose ENTRYPOINT runs bin/backupctl.js worker', () => {
    const worker = services[WORKER];
    expect(worker.build).toBeDefined();
    const { dockerfile } = workerBuild(worker);
    expect(existsSync(dockerfile)).toBe(true);
    const text = readFileSync(dockerfile, 'utf8');
    const entrypoint = dockerfileExec(text, 'ENTRYPOINT');
    expect(entrypoint).toEqual(['node', 'bin/backupctl.js']);
    // What the container runs: the service's entrypoint/command, else the image's.
    const argv = [...(worker.entrypoint !== undefined ? asArgv(worker.entrypoint) : entrypoint!), ...(worker.command !== undefined ? asArgv(worker.command) : dockerfileExec(text, 'CMD') ?? [])];
    expect(argv).toEqual(['node', 'bin/backupctl.js', 'worker']);
    expect(dockerfileExec(text, 'CMD')).toEqual(['worker']);
    // Debian (glibc) Node, at least the major that package.json's engines asks for.
    const node = text.match(/^FROM node:(\d+)-bookworm-slim\b/m);
    expect(node).not.toBeNull();
    expect(Number(node![1])).toBeGreaterThanOrEqual(20);
    expect(text).toMatch(/npm ci --omit=dev/);
    // Runs as a non-root user.
    const user = text.match(/^\s*USER\s+(\S+)/gim)?.at(-1)?.split(/\s+/).at(-1);
    expect(user).toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(user);
  });

  it('keeps dependencies and secrets out of the image build context', () => {
    const ignored = readFileSync(path.join(workerBuild(services[WORKER]).context, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim().replace(/^\/|\/$/g, ''))
      .filter((l) => l && !l.startsWith('#'));
    for (const entry of ['node_modules', '.tools', '.backupctl', '.git', 'test', 'deploy']) expect(ignored).toContain(entry);
    const dockerfile = readFileSync(workerBuild(services[WORKER]).dockerfile, 'utf8');
    const copied = [...dockerfile.matchAll(/^\s*COPY\s+(?!--from)(.+)$/gim)].flatMap((m) => m[1].trim().split(/\s+/).slice(0, -1));
    for (const source of copied) expect({ source, ignored: ignored.includes(source.replace(/^\.\/|\/$/g, '')) }).toEqual({ source, ignored: false });
  });

  it('gives the worker its configuration, public key and signing key read-only, and names the config file', () => {
    const worker = services[WORKER];
    const workerEnv = env(worker);
    expect(workerEnv.BACKUPCTL_CONFIG).toBe('/etc/backupctl/config.yaml');
    const configMount = mounts(worker).find((m) => m.target === workerEnv.BACKUPCTL_CONFIG);
    expect(configMount).toMatchObject({ type: 'bind', readOnly: true });
    const config = validateConfig(YAML.parse(readFileSync(configMount!.source!, 'utf8')), configMount!.rawSource!);
    const keyMount = mounts(worker).find((m) => m.target === config.encryption.publicKeyFile);
    expect(keyMount).toMatchObject({ type: 'bind', readOnly: true });
    // The key it signs its manifests with: a bind mount, read-only (a volume would outlive it).
    const signingMount = mounts(worker).find((m) => m.target === config.signing.privateKeyFile);
    expect(signingMount).toMatchObject({ type: 'bind', readOnly: true });
    // Filesystem repositories must live on a mount, or a recreated container loses the backups.
    for (const [name, repo] of Object.entries(config.repositories)) {
      if (repo.type !== 'filesystem') continue;
      const persisted = mounts(worker).some((m) => m.type === 'volume' || m.type === 'bind' ? repo.path === m.target || repo.path.startsWith(`${m.target}/`) : false);
      expect({ repository: name, path: repo.path, persisted }).toEqual({ repository: name, path: repo.path, persisted: true });
    }
  });

  it('has no secret values written into it', () => {
    for (const [name, service] of Object.entries(rawServices)) {
      for (const [key, value] of Object.entries(env(service))) {
        expect({ name, key, envFileOnly: ENV_FILE_ONLY.includes(key) }).toEqual({ name, key, envFileOnly: false });
        if (!SECRET_KEY.test(key)) continue;
        // Only a variable reference, with a default only for the throwaway Temporal DB password.
        const ref = value.match(/^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}$/);
        expect({ name, key, isVariable: Boolean(ref) }).toEqual({ name, key, isVariable: true });
        if (ref?.[2] !== undefined) expect(DEFAULTABLE_SECRET_VARIABLES).toContain(ref[1]);
      }
    }
    // No credentials in URLs anywhere in the file.
    expect(text).not.toMatch(/[a-z][a-z0-9+.-]*:\/\/[^\s/@:]+:[^\s/@]+@/i);
  });
});

describe('deploy/ examples', () => {
  it('has an example configuration that parses and is valid', () => {
    const file = path.join(ROOT, 'deploy/backupctl.example.yaml');
    const parsed = YAML.parse(readFileSync(file, 'utf8'));
    expect(parsed).toEqual(expect.objectContaining({ host: expect.any(String), database: expect.any(Object), encryption: expect.any(Object) }));
    const config = validateConfig(parsed, file);
    expect(new URL(config.database.url).password).toBe('');
    expect(Object.values(config.repositories).map((r) => r.type).sort()).toEqual(['filesystem', 'filesystem', 's3']);
  });

  it('has a worker env example with the secret names and no values', () => {
    const lines = readFileSync(path.join(ROOT, 'deploy/worker.env.example'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const vars = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    for (const key of ['PGPASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) expect(vars[key]).toBe('');
  });
});
