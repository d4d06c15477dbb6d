/**
 * meshledger — the package's public API (package.json "main"/"exports": dist/src/index.js).
 *
 * Keys and signatures (ed25519), addresses (bech32m "ml1…"), transactions (build, sign, encode, decode),
 * their JSON views, display-amount conversion, and the typed JSON-RPC clients. Only re-exports live here.
 */

// Keys and signatures.
export { generateSecretKey, getPublicKey, sign, verify, PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, SIGNATURE_BYTES } from './crypto/ed25519.js';

// Addresses.
export { encodeAddress, decodeAddress, isAddress, AddressError, ADDRESS_PREFIX } from './encoding/address.js';

// Bytes (hex is what the RPC speaks).
export { toHex, fromHex, isHex } from './encoding/bytes.js';

// Transactions.
export { signTx, decodeTx, encodeUnsignedTx, txSigningMessage, TX_VERSION, TX_SIGNING_PREFIX, MAX_TX_BYTES } from './ledger/tx.js';
export type { Tx, UnsignedTx } from './ledger/tx.js';
export { RuleError } from './ledger/rules.js';
export type { Rule } from './ledger/rules.js';
export { txToJson, headerToJson } from './ledger/json.js';
export type { TxJson, HeaderJson } from './ledger/json.js';

// Display amounts <-> minor units.
export { parseAmount, formatAmount, AmountError, MAX_DECIMALS } from './wallet/amount.js';
export type { AmountRule } from './wallet/amount.js';

// JSON-RPC clients and result types.
export { RpcClient, RpcWsClient, RpcClientError, RpcTransportError, DEFAULT_TIMEOUT_MS } from './sdk/client.js';
export type {
  RpcClientOptions, Subscription, SubscriptionTopic, BlockSelector,
  Health, VersionInfo, NodeInfo, ChainInfo, BlockJson, TransactionJson, TransactionStatus, AccountInfo, Balance,
  HistoryEntry, AccountTransactions, MempoolInfo, PeerInfo, Equivocation, BanInfo, NewHeadEvent, AccountEvent,
} from './sdk/client.js';
