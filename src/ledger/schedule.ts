/**
 * Proof-of-authority slot schedule (Aura-style). Pure integer arithmetic on milliseconds.
 *   slot(t)      = floor((t − genesisTime) / slotMs)       (t ≥ genesisTime; earlier times are slot 0)
 *   start(slot)  = genesisTime + slot × slotMs
 *   proposer(s)  = validators[s mod n]
 */
import type { Genesis } from './genesis.js';

export function slotAt(g: Pick<Genesis, 'genesisTime' | 'slotMs'>, timeMs: number): number {
  if (timeMs <= g.genesisTime) return 0;
  return Math.floor((timeMs - g.genesisTime) / g.slotMs);
}

export function slotStart(g: Pick<Genesis, 'genesisTime' | 'slotMs'>, slot: number): number {
  return g.genesisTime + slot * g.slotMs;
}

export function proposerIndex(g: Pick<Genesis, 'validators'>, slot: number): number {
  return slot % g.validators.length;
}

export function proposerFor(g: Pick<Genesis, 'validators'>, slot: number): Uint8Array {
  return g.validators[proposerIndex(g, slot)]!;
}
