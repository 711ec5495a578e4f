// The operator's connection to Temporal.
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../common/config.js';
import { temporalDataConverter } from '../workers/dataConverter.js';
import { connectionOptions } from '../workers/temporalConnection.js';

export async function connectClient(config: Config): Promise<{ client: Client; close(): Promise<void> }> {
  // Before connecting: missing payload keys are reported even while Temporal is down.
  const dataConverter = temporalDataConverter(config);
  const connection = await Connection.connect({ ...connectionOptions(config), connectTimeout: '5 seconds' });
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  return { client, close: () => connection.close() };
}
