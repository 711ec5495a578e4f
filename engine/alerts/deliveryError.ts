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

/**
 * TLS that cannot work as configured: a certificate the client does not trust (a wrong host
 * name, a private CA), or TLS spoken to a port that speaks plain text (OpenSSL's "wrong version
 * number"). Settings to fix, not luck to wait for.
 */
export const TLS_SETTINGS_PROBLEM = /certificate|self[- ]signed|CERT_|ERR_TLS_CERT|UNABLE_TO_(GET|VERIFY)|wrong version number|unknown protocol|packet length too long|unsupported protocol|ERR_SSL_/i;
