// End-to-end in Debian's Chromium (DevTools protocol): see lib/scenarios.mjs and lib/rpid.mjs.
import { browserSuite } from './lib/scenarios.mjs';
import { rpidSuite } from './lib/rpid.mjs';

browserSuite('chromium');
rpidSuite('chromium');
