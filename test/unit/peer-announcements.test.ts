import { describe, expect, it } from 'vitest';
import { PeerAnnouncements } from '../../src/consensus/peer-announcements.js';

const PEER = 195;
const v = (state: number | undefined, rules: number | undefined) => ({ state, rules });

describe('the versions a peer announced on its links', () => {
  it('are what its link announced, and unknown before it links', () => {
    const a = new PeerAnnouncements<string>();
    expect([a.linked(PEER), a.state(PEER), a.rules(PEER)]).toEqual([false, undefined, undefined]);
    a.opened(PEER, 'own', v(7, 4));
    expect([a.linked(PEER), a.state(PEER), a.rules(PEER)]).toEqual([true, 7, 4]);
  });

  it('are not lowered by a stray link opened in its name after its own, announcing older versions', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'own', v(7, 4));
    a.opened(PEER, 'stray', v(6, 3));
    expect([a.state(PEER), a.rules(PEER)]).toEqual([7, 4]);
  });

  it('are not forgotten for a stray link announcing nothing beside its own', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'own', v(7, 4));
    a.opened(PEER, 'stray', v(undefined, undefined));
    expect([a.state(PEER), a.rules(PEER)]).toEqual([7, 4]);
  });

  it('go with the links that announced them: a stray left alone is all the peer has said', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'own', v(7, 4));
    a.opened(PEER, 'stray', v(6, 3));
    a.closed(PEER, 'own');
    expect([a.linked(PEER), a.state(PEER), a.rules(PEER)]).toEqual([true, 6, 3]);
  });

  it('are unknown when a process that announces nothing (an older Weir) links in place of one that did', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'before', v(7, 4));
    a.closed(PEER, 'before');
    a.opened(PEER, 'after', v(undefined, undefined));
    expect([a.state(PEER), a.rules(PEER)]).toEqual([undefined, undefined]);
  });

  it('keep its state version once its last link closed, and forget its rules', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'own', v(7, 4));
    a.opened(PEER, 'second', v(5, 2));
    a.closed(PEER, 'second');
    a.closed(PEER, 'own');
    expect([a.linked(PEER), a.state(PEER), a.rules(PEER)]).toEqual([false, 7, undefined]);
  });

  it('take a newer process linking after its last link closed at its word', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'old', v(7, 4));
    a.closed(PEER, 'old');
    a.opened(PEER, 'upgraded', v(8, 5));
    expect([a.state(PEER), a.rules(PEER)]).toEqual([8, 5]);
  });

  it('ignore a link closed twice, or one never opened, and keep each peer apart', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'own', v(7, 4));
    a.opened(196, 'other', v(9, 6));
    a.closed(PEER, 'never');
    a.closed(196, 'own');
    expect([a.state(PEER), a.rules(PEER), a.state(196), a.rules(196)]).toEqual([7, 4, 9, 6]);
    a.closed(PEER, 'own');
    a.closed(PEER, 'own');
    expect([a.linked(PEER), a.state(PEER), a.linked(196)]).toEqual([false, 7, true]);
  });

  it('forget the state version of a peer no longer in the configuration, once its links are gone', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'own', v(7, 4));
    a.opened(196, 'other', v(9, 6));
    a.closed(PEER, 'own');
    a.closed(196, 'other');
    a.keepOnly(new Set([196]));
    expect([a.state(PEER), a.state(196)]).toEqual([undefined, 9]);
  });

  it('keep nothing for a peer whose links announced nothing', () => {
    const a = new PeerAnnouncements<string>();
    a.opened(PEER, 'old', v(7, 4));
    a.closed(PEER, 'old');
    a.opened(PEER, 'older Weir', v(undefined, undefined));
    a.closed(PEER, 'older Weir');
    expect(a.state(PEER)).toBeUndefined();
  });
});
