/** What the P2P layer announces (metrics, the simulator, tests): payloads and names are part of its public face. */
export interface NetEvents {
  'peer:connected': (p: { nodeId: string; address: string; direction: 'inbound' | 'outbound' }) => void;
  'peer:disconnected': (p: { nodeId: string; code: number; reason: string }) => void;
  'peer:banned': (p: { nodeId: string; reason: string; until: number }) => void;
  'peer:penalized': (p: { nodeId: string; rule: string; score: number }) => void;
}

/** The Network's emit, handed to the parts that announce (switch.ts, scoring.ts). */
export type NetEmit = <K extends keyof NetEvents & string>(event: K, ...args: Parameters<NetEvents[K]>) => void;
