// The address of a workflow run in the Temporal Web UI (config temporal.webUiUrl): the one
// place that spells it, for the monitor's failed-run alerts and the dashboard's failed runs.

/** `${webUiUrl}/namespaces/<ns>/workflows/<id>/<runId>/history`; undefined when no Web UI is configured. */
export function workflowRunLink(webUiUrl: string | undefined, namespace: string, workflowId: string, runId: string): string | undefined {
  const ui = webUiUrl?.replace(/\/+$/, '');
  if (!ui) return undefined;
  return `${ui}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}
