"""Input feeds: seeded synthetic data from shape specs, .npy/.npz folders, images and callables."""
