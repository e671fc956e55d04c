pub mod swagger;
