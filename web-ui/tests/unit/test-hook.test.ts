import { describe, expect, it } from 'vitest'
import { selectedPath } from '../../src/lib/testHook'

describe('selectedPath', () => {
  it('follows the transport to the selected pair and its local candidate', () => {
    const report = [
      { type: 'transport', id: 'T', selectedCandidatePairId: 'P2' },
      { type: 'candidate-pair', id: 'P1', localCandidateId: 'L1', nominated: true, state: 'failed' },
      { type: 'candidate-pair', id: 'P2', localCandidateId: 'L2', nominated: true, state: 'succeeded' },
      { type: 'local-candidate', id: 'L1', candidateType: 'host', protocol: 'udp' },
      { type: 'local-candidate', id: 'L2', candidateType: 'relay', protocol: 'udp', relayProtocol: 'tcp' },
    ]
    expect(selectedPath(report)).toEqual({ candidateType: 'relay', protocol: 'udp', relayProtocol: 'tcp' })
  })

  it('falls back to the nominated, succeeded pair, and knows nothing without one', () => {
    const report = [
      { type: 'candidate-pair', id: 'P', localCandidateId: 'L', nominated: true, state: 'succeeded' },
      { type: 'local-candidate', id: 'L', candidateType: 'host', protocol: 'tcp' },
    ]
    expect(selectedPath(report)).toEqual({ candidateType: 'host', protocol: 'tcp', relayProtocol: null })
    expect(selectedPath([])).toEqual({ candidateType: null, protocol: null, relayProtocol: null })
  })
})
