// @ts-check
// ESLint (flat config; `npm run eslint`) for the extension, its build tool, the test page and
// the tests. The extension's files run in browsers (the background, the overlay and the two
// content scripts; the content scripts' one import is resolved by tools/build.mjs), the
// rest under node.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['dist/', 'node_modules/', 'test-output/', 'screenshots/'] },
  js.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: 'module' },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-implicit-globals': 'error',
      'no-shadow': 'error',
      'no-throw-literal': 'error',
      'no-eval': 'error',
      'no-implied-eval': 'error',
      'no-new-func': 'error',
    },
  },
  {
    files: ['extension/**/*.js', 'rp/public/**/*.js'],
    languageOptions: { globals: { ...globals.browser, chrome: 'readonly' } },
  },
  {
    files: ['extension/**/*.js'],
    rules: {
      'no-restricted-syntax': ['error', {
        // Message kinds are named once, in extension/messages.js ('public-key' is a
        // credential's type, not a message).
        selector: "Property[key.name='type'][value.type='Literal'][value.value!='public-key']",
        message: 'name the message kind with a constant from extension/messages.js',
      }, {
        selector: "BinaryExpression[operator=/^[!=]==$/][left.property.name='type'][right.type='Literal']",
        message: 'compare message kinds with a constant from extension/messages.js',
      }, {
        selector: "SwitchCase > Literal.test",
        message: 'name the message kind with a constant from extension/messages.js',
      }],
    },
  },
  {
    files: ['tools/**/*.mjs', 'test/**/*.mjs', 'rp/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: { ...globals.node } },
  },
];
