// A channel's failure, classified where it happens: whether trying the same channel later may
// help. The message is for people and is scrubbed of secrets before anyone sees it.

export class AlertDeliveryError extends Error {
  override readonly name = 'AlertDeliveryError';
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

/** Network failures that a later attempt may not meet: the peer is down, slow or unreachable for now. */
export const TRANSIENT_NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** A certificate the client does not trust: configuration (a wrong host name, a private CA), not luck. */
export const CERTIFICATE_PROBLEM = /certificate|self[- ]signed|CERT_|ERR_TLS_CERT|UNABLE_TO_(GET|VERIFY)/i;
